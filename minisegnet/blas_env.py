"""How long OpenBLAS's idle threads spin: decided before NumPy loads OpenBLAS.

After each multi-threaded matrix product OpenBLAS keeps its worker threads spinning
(busy-waiting for the next product) for about 2**28 cycles, a tenth of a second. On a
machine with few cores those spinning threads take the cores minisegnet's own worker
threads (:mod:`minisegnet.kernels.threads`) need, so two threads ran a training step no
faster than one while both cores were 100 % busy. ``OPENBLAS_THREAD_TIMEOUT=4`` (2**4
cycles) makes them sleep at once; OpenBLAS reads it only when it is loaded, i.e. when
NumPy is first imported. So ``import minisegnet`` sets it when NumPy is not loaded yet
(and the variable is not set already), and :data:`SHORT_SPIN` says whether the short
spin is in effect. When it is not (NumPy came first), the thread module keeps BLAS at
one thread while minisegnet uses several, which avoids the contention the same way.
"""
import os
import sys

VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
SHORT = 8                     # 2**8 cycles or less counts as "sleeps at once"


def _short_spin():
    if "numpy" not in sys.modules and VARIABLE not in os.environ:
        os.environ[VARIABLE] = "4"
        return True
    value = os.environ.get(VARIABLE, "")
    # set by the user, or inherited from a parent process, before this process loaded NumPy
    return value.isdigit() and int(value) <= SHORT


#: True when OpenBLAS's idle threads sleep almost at once in this process.
SHORT_SPIN = _short_spin()
