"""Every convolution of a model, minisegnet against PyTorch: where a training step loses its time.

A model's forward pass is run once to record each convolution it makes (input shape,
weight shape, stride, padding, dilation, groups). Each one is then timed on its own,
forward + backward (grad weight, and grad input unless the input is the image), in
minisegnet's kernels and in PyTorch, interleaved (``common.time_interleaved``), at the
same thread count. The table lists the layers by how many milliseconds minisegnet loses
(or wins) on each, with both libraries' effective GFLOP/s: a layer whose products already
run near the machine's matrix-product speed can only gain from a faster BLAS, one far
below it has overhead to remove.

That speed is measured too, interleaved with the other two: the layer's *one BLAS call*
is NumPy's own matrix product (OpenBLAS) of the forward pass's shape, ``(O, C*kh*kw) @
(C*kh*kw, N*Ho*Wo)``, split over the threads by columns (BLAS at one thread each, as in
the kernels), counted once per pass. A layer near that speed has nothing left to gain but
a faster BLAS; PyTorch's oneDNN kernels are not bound by it. (Thin products, e.g. a stem's
16 output channels, run faster cut into pieces than as one call: there minisegnet beats
it.) Grouped convolutions (depthwise) have no such single product and show "-".

    python benchmarks/bench_layers.py                       # fcn, 1 thread, 8x3x128x128
    python benchmarks/bench_layers.py --models deeplabv3,fcn --threads 2

Results: ``benchmarks/results/bench_layers_t<threads>.json`` (``--no-save`` to skip).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from common import describe, machine_note, set_threads, step_arguments, time_interleaved, write_result  # noqa: E402

import minisegnet as ms  # noqa: E402
import minisegnet.functional.conv as FC  # noqa: E402
from minisegnet import models  # noqa: E402
from minisegnet.kernels import conv as K  # noqa: E402
from minisegnet.kernels.threads import parallel_for  # noqa: E402


def record_convolutions(name, batch, size):
    """The (x shape, weight shape, bias?, stride, padding, dilation, groups) of every conv2d
    in one training-mode forward pass of zoo model ``name``, in order."""
    seen, forward = [], FC.Conv2d.forward

    def recording(ctx, x, weight, bias, stride, padding, dilation, groups, out_hw):
        pair = (lambda v: tuple(v) if not isinstance(v, int) else (v, v))
        seen.append(dict(x=tuple(x.shape), w=tuple(weight.shape), bias=bias is not None, stride=pair(stride),
                         padding=pair(padding), dilation=pair(dilation), groups=int(groups)))
        return forward(ctx, x, weight, bias, stride, padding, dilation, groups, out_hw)

    FC.Conv2d.forward = staticmethod(recording)
    try:
        ms.manual_seed(0)
        model = models.create(name, num_classes=21)
        model.train()
        model(ms.tensor(np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)))
    finally:
        FC.Conv2d.forward = staticmethod(forward)
    return seen


def time_layer(layer, repeats):
    """(minisegnet s, PyTorch s, multiply-adds) of one convolution's forward + backward."""
    import torch
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer["x"]).astype(np.float32)
    w = (rng.standard_normal(layer["w"]) / np.sqrt(np.prod(layer["w"][1:]))).astype(np.float32)
    args = (layer["stride"], layer["padding"], layer["dilation"], layer["groups"])
    y = K.conv2d_forward(x, w, None, *args)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    need_x = layer["x"][1] != 3                      # the image itself needs no gradient

    def ours():
        K.conv2d_forward(x, w, None, *args)
        K.conv2d_backward(gy, x, w, *args, need_x=need_x, need_w=True, need_b=layer["bias"])

    xt, wt, gyt = torch.tensor(x, requires_grad=need_x), torch.tensor(w, requires_grad=True), torch.tensor(gy)
    bt = torch.zeros(layer["w"][0], requires_grad=True) if layer["bias"] else None

    def theirs():
        torch.nn.functional.conv2d(xt, wt, bt, *args).backward(gyt)
        xt.grad = wt.grad = None
        if bt is not None:
            bt.grad = None

    runners = {"minisegnet": ours, "torch": theirs}
    passes = 3 if need_x else 2
    blas = blas_product(w, y.shape, layer["groups"], rng)
    if blas is not None:
        runners["blas"] = lambda: [blas() for _ in range(passes)]
    # three calls in a row per library and round: at 2 threads a call right after a pause
    # finds the other core asleep and runs up to 2x slower on this VM (benchmarks/README.md)
    wall, _ = time_interleaved(runners, repeats, block=BLOCK)
    macs = int(np.prod(y.shape)) * int(np.prod(layer["w"][1:]))
    return wall["minisegnet"], wall["torch"], wall.get("blas"), macs * passes


BLOCK = 3


def blas_product(w, y_shape, groups, rng):
    """A callable that runs the forward pass's matrix product of a convolution with weight
    ``w`` and output shape ``y_shape`` as plain NumPy ``matmul``: ``(O, C*kh*kw) @ (C*kh*kw,
    N*Ho*Wo)``, its columns split over the threads. None for grouped convolutions."""
    if groups != 1:
        return None
    a = w.reshape(w.shape[0], -1)
    b = rng.standard_normal((a.shape[1], int(np.prod(y_shape)) // y_shape[1])).astype(np.float32)
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    return lambda: parallel_for(lambda lo, hi: np.matmul(a, b[:, lo:hi], out=out[:, lo:hi]), b.shape[1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    step_arguments(p, "fcn", 1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("bench_layers needs PyTorch (the comparison): pip install torch==2.13.0", file=sys.stderr)
        return 1
    set_threads(args.threads)
    note = machine_note()
    print(describe(note))
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        for layer in record_convolutions(name, args.batch, args.size):
            ours, theirs, blas, macs = time_layer(layer, args.repeats)
            rows.append(dict(model=name, **layer, minisegnet_s=ours, torch_s=theirs, blas_s=blas, macs=macs))
            one_call = f", one BLAS call {2 * macs / blas / 1e9:.0f}" if blas else ""
            print(f"{name}: x{layer['x']} w{layer['w']} s{layer['stride']} d{layer['dilation']} g{layer['groups']}: "
                  f"{1e3 * ours:.2f} vs {1e3 * theirs:.2f} ms ({ours / theirs:.2f}x), "
                  f"{2 * macs / ours / 1e9:.0f} vs {2 * macs / theirs / 1e9:.0f} GFLOP/s{one_call}", flush=True)
    for name in sorted({r["model"] for r in rows}):
        mine = [r for r in rows if r["model"] == name]
        a, b = sum(r["minisegnet_s"] for r in mine), sum(r["torch_s"] for r in mine)
        print(f"{name}: all {len(mine)} convolutions {1e3 * a:.1f} vs {1e3 * b:.1f} ms ({a / b:.2f}x)")
    if not args.no_save:
        config = dict(batch=args.batch, size=args.size, repeats=args.repeats, block=BLOCK, threads=args.threads)
        print("wrote", write_result(f"bench_layers_t{args.threads}", dict(machine=note, config=config, rows=rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
