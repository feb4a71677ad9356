"""The one thread pool (minisegnet.kernels.threads): work really is split over 1, 2 and 3
threads -- by the pool itself and by the conv and normalization kernels on it -- BLAS is
held at one thread inside a parallel section, nesting runs serially, and the answers do
not depend on the thread count."""
import os
import threading

import numpy as np
import pytest

import minisegnet as ms
from minisegnet.kernels import blocks as block_kernels
from minisegnet.kernels import conv as conv_kernels
from minisegnet.kernels import normalization as norm_kernels
from minisegnet.kernels import pooling as pool_kernels
from minisegnet.kernels import threads as T


@pytest.fixture
def threads_set():
    """set_num_threads(n) for the test, back to the default afterwards."""
    yield T.set_num_threads
    T.set_num_threads(None)


@pytest.fixture
def chunk_threads(monkeypatch):
    """(thread id, start, stop) of every chunk of a parallel section, as it runs."""
    seen, run_chunk = [], T._run_chunk

    def recording(fn, start, stop):
        seen.append((threading.get_ident(), start, stop))
        return run_chunk(fn, start, stop)
    monkeypatch.setattr(T, "_run_chunk", recording)
    return seen


def assert_split(chunks, n):
    """n chunks per parallel section, chunk 0 in this thread, the others on pool workers
    (a worker may take two chunks when it is quick, so only >= 2 distinct threads is sure)."""
    if n == 1:
        assert chunks == []                                      # one thread: no parallel section
        return
    assert len(chunks) % n == 0 and len(chunks) >= n
    assert len({ident for ident, _, _ in chunks}) >= 2
    me = threading.get_ident()
    assert all((ident == me) == (start == 0) for ident, start, _ in chunks)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_parallel_for_runs_every_chunk_at_once_on_n_threads(threads_set, n):
    threads_set(n)
    barrier = threading.Barrier(n, timeout=10)   # passes only if n chunks run concurrently
    ran = []

    def fn(start, stop):
        ran.append((start, stop, threading.get_ident()))
        barrier.wait()
        return list(range(start, stop))

    results = T.parallel_for(fn, 7)
    assert [i for part in results for i in part] == list(range(7))        # in order, all items
    assert len(results) == n and len({ident for _, _, ident in ran}) == n
    assert sorted(ran)[0][2] == threading.get_ident()                       # the caller takes chunk 0


@pytest.mark.parametrize("n", [1, 2, 3])
def test_conv_kernels_split_the_batch_over_n_threads(threads_set, chunk_threads, monkeypatch, n):
    monkeypatch.setattr(conv_kernels, "PARALLEL_MIN_MACS", 0)     # split even this small one
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((6, 4, 10, 9)), rng.standard_normal((5, 4, 3, 3))
    kw = dict(stride=1, padding=1)
    threads_set(1)
    y1 = conv_kernels.conv2d_forward(x, w, **kw)
    g = rng.standard_normal(y1.shape)
    ref = [y1, conv_kernels.conv2d_grad_input(g, w, x.shape[2:], **kw),
           conv_kernels.conv2d_grad_weight(g, x, w.shape, **kw)[0]]
    threads_set(n)
    chunk_threads.clear()
    got = [conv_kernels.conv2d_forward(x, w, **kw), conv_kernels.conv2d_grad_input(g, w, x.shape[2:], **kw),
           conv_kernels.conv2d_grad_weight(g, x, w.shape, **kw)[0]]
    assert_split(chunk_threads, n)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_small_convolutions_stay_on_one_thread(threads_set, chunk_threads):
    """Below PARALLEL_MIN_MACS multiply-adds the hand-off would cost more than it saves."""
    rng = np.random.default_rng(2)
    small = (rng.standard_normal((8, 16, 16, 16)), rng.standard_normal((16, 16, 3, 3)))   # 4.7 M MACs
    big = (rng.standard_normal((8, 64, 32, 32)), rng.standard_normal((64, 64, 3, 3)))     # 302 M MACs
    threads_set(2)
    for (x, w), split in ((small, False), (big, True)):
        assert (x.shape[0] * w.size * x.shape[2] * x.shape[3] >= conv_kernels.PARALLEL_MIN_MACS) == split
        chunk_threads.clear()
        g = conv_kernels.conv2d_forward(x, w, padding=1)
        conv_kernels.conv2d_grad_input(g, w, x.shape[2:], padding=1)
        conv_kernels.conv2d_grad_weight(g, x, w.shape, padding=1)
        if split:
            assert_split(chunk_threads, 2)
        else:
            assert chunk_threads == []


def test_side_by_side_runs_the_tasks_at_once_and_keeps_their_order(threads_set):
    threads_set(2)
    barrier = threading.Barrier(2, timeout=10)     # passes only if both tasks run concurrently
    seen = []

    def task(value):
        def run():
            seen.append(threading.get_ident())
            barrier.wait()
            return value
        return run

    assert T.side_by_side([task("first"), task("second")]) == ["first", "second"]
    assert len(set(seen)) == 2
    threads_set(1)
    assert T.side_by_side([lambda: 1, lambda: 2]) == [1, 2]         # one thread: in turn


@pytest.mark.parametrize("transposed", [False, True])
def test_conv_backward_products_side_by_side_match_torch(threads_set, chunk_threads, monkeypatch, parity,
                                                          transposed):
    """Grad input on one thread and grad weight on the other give PyTorch's gradients."""
    import torch
    import torch.nn.functional as TF
    from minisegnet import functional as F
    monkeypatch.setattr(conv_kernels, "PARALLEL_MIN_MACS", 0)       # side by side even here
    calls, real = [], T.side_by_side
    monkeypatch.setattr(conv_kernels, "side_by_side", lambda tasks, xp=np: calls.append(len(tasks)) or real(tasks, xp))
    rng = np.random.default_rng(3)
    x, b = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal(6)
    threads_set(2)
    if transposed:
        w = rng.standard_normal((4, 6, 3, 3))
        parity(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1),
               lambda x, w, b: TF.conv_transpose2d(x, w, b, stride=2, padding=1), [x, w, b])
    else:
        w = rng.standard_normal((6, 4, 3, 3))
        parity(lambda x, w, b: F.conv2d(x, w, b, padding=2, dilation=2),
               lambda x, w, b: TF.conv2d(x, w, b, padding=2, dilation=2), [x, w, b])
    assert calls == [2]                                              # both products, one section
    me = threading.get_ident()
    assert any(start == 1 and stop == 2 and ident != me for ident, start, stop in chunk_threads)


@pytest.mark.parametrize("n", [2, 3])
def test_max_pool_splits_the_batch_and_matches_torch(threads_set, chunk_threads, monkeypatch, parity, n):
    import torch.nn.functional as TF
    from minisegnet import functional as F
    monkeypatch.setattr(pool_kernels, "PARALLEL_MIN_ELEMENTS", 0)   # split even this small one
    x = np.random.default_rng(4).standard_normal((5, 3, 9, 10))
    threads_set(n)
    chunk_threads.clear()
    parity(lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), [x])
    assert_split(chunk_threads, n)                                   # forward and backward
    assert len(chunk_threads) == 2 * n


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.01, weight_decay=0.1)),
                                         ("SGD", dict(lr=0.1, momentum=0.9))])
def test_optimizer_deals_parameters_to_the_threads_and_matches_torch(threads_set, chunk_threads, monkeypatch,
                                                                     name, kwargs):
    torch = pytest.importorskip("torch")
    from minisegnet import nn, optim
    monkeypatch.setattr(optim, "PARALLEL_MIN_ELEMENTS", 0)          # split even these
    rng = np.random.default_rng(5)
    shapes = [(7, 3), (20,), (4, 4, 3), (1,), (9,)]
    start = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(3)]
    ps = [nn.Parameter(ms.tensor(a)) for a in start]
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in start]
    opt, topt = getattr(optim, name)(ps, **kwargs), getattr(torch.optim, name)(tps, **kwargs)
    threads_set(2)
    chunk_threads.clear()
    for step in grads:
        for p, tp, g in zip(ps, tps, step):
            p.grad, tp.grad = ms.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    assert_split(chunk_threads, 2)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_batch_norm_kernels_split_the_blocks_over_n_threads(threads_set, chunk_threads, n):
    x3 = np.random.default_rng(1).standard_normal((12, 32, 4096)).astype(np.float32)
    assert len(norm_kernels.blocks(x3.shape)) >= 3
    x64 = x3.astype(np.float64)
    threads_set(n)
    chunk_threads.clear()
    mean, var = norm_kernels.batch_statistics(x3)
    assert_split(chunk_threads, n)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), atol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=1e-5)


def test_blas_is_held_at_one_thread_inside_a_section(threads_set):
    libs = T.blas_libraries()
    if not libs:
        pytest.skip("threadpoolctl found no BLAS library")
    threads_set(2)
    # outside a section: the same count, unless OpenBLAS's idle threads would spin (NumPy
    # was imported before minisegnet, as it is here under pytest), then one (blas_env.py)
    outside = 2 if T.blas_env.SHORT_SPIN else 1
    assert all(lib.num_threads == outside for lib in libs)      # one limit: set_num_threads
    inside = T.parallel_for(lambda a, b: [lib.num_threads for lib in libs], 2)
    assert inside == [[1] * len(libs)] * 2
    assert all(lib.num_threads == outside for lib in libs)      # restored afterwards


def test_openblas_spin_is_shortened_when_minisegnet_comes_before_numpy():
    """A fresh interpreter that imports minisegnet first gets OPENBLAS_THREAD_TIMEOUT=4 and
    keeps BLAS threads outside sections; one that imported NumPy first holds BLAS at 1."""
    import subprocess
    import sys
    code = ("import {first}, minisegnet as ms, os; from minisegnet.kernels import threads as T; "
            "ms.set_num_threads(2); print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), ms.blas_env.SHORT_SPIN, "
            "[lib.num_threads for lib in T.blas_libraries()])")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    runs = {first: subprocess.run([sys.executable, "-c", code.format(first=first)], env=env, capture_output=True,
                                  text=True, check=True).stdout.split(" ", 2) for first in ("sys", "numpy")}
    assert runs["sys"][:2] == ["4", "True"]
    assert runs["numpy"][:2] == ["None", "False"]
    if runs["sys"][2].strip() != "[]":                           # threadpoolctl found a BLAS
        assert "1" not in runs["sys"][2] and set(runs["numpy"][2].strip("[]\n").split(", ")) == {"1"}


def test_nested_sections_run_serially_in_the_calling_thread(threads_set):
    threads_set(2)

    def outer(start, stop):
        me = threading.get_ident()
        inner = T.parallel_for(lambda a, b: (a, b, threading.get_ident()), 4)
        return inner == [(0, 4, me)]

    assert T.parallel_for(outer, 2) == [True, True]


def test_an_error_in_a_chunk_propagates_and_the_pool_still_works(threads_set):
    threads_set(2)

    def fail_second(start, stop):
        if start > 0:
            raise RuntimeError("chunk failed")
        return start

    with pytest.raises(RuntimeError, match="chunk failed"):
        T.parallel_for(fail_second, 2)
    assert T.parallel_for(lambda a, b: b - a, 4) == [2, 2]


def test_settings_environment_and_public_names(threads_set, monkeypatch):
    monkeypatch.setenv("MINISEGNET_NUM_THREADS", "3")
    assert T.num_threads() == 3 and ms.get_num_threads() == 3
    ms.set_num_threads(2)
    assert T.num_threads() == conv_kernels.num_threads() == block_kernels.num_threads() == 2
    ms.set_num_threads(None)
    assert T.num_threads() == 3
    monkeypatch.setenv("MINISEGNET_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match=r"MINISEGNET_NUM_THREADS must be a positive integer, got 'zero'"):
        T.num_threads()
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"set_num_threads: n must be a positive int or None, got "):
            ms.set_num_threads(bad)


def test_chunk_bounds_cover_the_range():
    assert T.chunk_bounds(7, 3) == [0, 2, 4, 7]
    assert T.chunk_bounds(2, 2) == [0, 1, 2]


def test_workers_let_go_of_a_section_once_it_has_run(threads_set):
    """A worker must not keep the last chunk's function (and, through its closure, the
    kernel's arrays) alive until the next parallel section."""
    import gc
    import weakref
    threads_set(2)

    class Buffer:
        pass
    held = Buffer()
    ref = weakref.ref(held)
    T.parallel_for(lambda a, b, h=held: b - a, 4)
    del held
    gc.collect()
    assert ref() is None
