"""minisegnet.allocator: once a training run has called keep_freed_memory(), a large array
freed and allocated again comes back without page faults (glibc keeps it), unless the
user opted out or tuned malloc; a mere import changes nothing. The oracle is the kernel's
own count of minor page faults."""
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

import minisegnet.allocator as A

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _glibc():
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):
        return False


glibc_linux = pytest.mark.skipif(not _glibc(), reason="glibc's malloc only")

PROBE = """
import resource, sys, numpy as np
import minisegnet.allocator as A
if sys.argv[1] == "keep":
    A.keep_freed_memory()
a = np.empty(10 << 20, np.float32); a[:] = 1; del a            # 40 MB written, then freed
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.empty(10 << 20, np.float32); b[:] = 2                   # the same size again
print(A.kept(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _probe(keep=True, **env):
    full = dict(os.environ, PYTHONPATH=ROOT, **env)
    for name in ("MINISEGNET_KEEP_MEMORY", "GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        if name not in env:
            full.pop(name, None)
    out = subprocess.run([sys.executable, "-c", PROBE, "keep" if keep else "import"], env=full, capture_output=True, text=True, check=True).stdout
    kept, faults = out.split()
    return kept == "True", int(faults)


@glibc_linux
def test_a_freed_array_comes_back_without_page_faults():
    kept, faults = _probe()
    assert kept and faults <= 5


@glibc_linux
def test_without_it_the_same_array_is_faulted_in_again():
    kept, faults = _probe(MINISEGNET_KEEP_MEMORY="0")
    assert not kept and faults >= 15          # >= 20 even with 2 MB huge pages


@glibc_linux
def test_a_user_tuned_malloc_is_left_alone():
    kept, _ = _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000000")
    assert not kept
    kept, _ = _probe(MALLOC_TRIM_THRESHOLD_="1000000")
    assert not kept


@glibc_linux
def test_importing_minisegnet_leaves_malloc_alone():
    kept, faults = _probe(keep=False)
    assert not kept and faults >= 15


def test_a_training_run_keeps_its_memory(tmp_path, monkeypatch):
    """Trainer.fit asks for it (whatever the platform answers)."""
    from minisegnet import train
    calls = []
    monkeypatch.setattr(train.allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    trainer = train.Trainer(train.make_config(epochs=1, train_size=8, val_size=8, batch_size=4),
                            out=str(tmp_path / "run"), progress=False, log=lambda *a, **k: None)
    trainer.fit()
    assert calls == [1]
