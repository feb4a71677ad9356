"""The exact GELU, ``gelu(x) = x * Phi(x)``, and its derivative, on raw arrays.

``Phi`` is the standard normal CDF, ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``, and

    d gelu / dx = Phi(x) + x * phi(x),        phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

NumPy has no ``erf``, so this module brings two ways to Phi:

* :func:`erf` -- fdlibm's rational approximations, one per interval of ``|x|``, in
  float64, to the last bit of a double. Float64 arrays and the GPU use it.
* float32 arrays on the CPU use one formula for the whole line, without branches::

      h = erfc(|x| / sqrt 2) / 2 = t/2 * exp(-x^2/2 + S(t)),   t = 1 / (1 + |x| / (2 sqrt 2))
      Phi(x) = h  for x < 0,      1 - h  otherwise

  where ``S`` is a degree-8 polynomial in ``t`` fitted for this project
  (:func:`fit_erfc_exponent`, relative error of erfc below 3e-7 in float64). There is no
  ``1 + erf`` cancellation in the negative tail: the float32 result stays within 2e-5
  relative of the true value everywhere (PyTorch's float32 ``1 + erf`` has lost every
  digit by x = -6: it returns -0.0 for -5.9e-9). It is about 30 array passes, against
  well over a hundred for the piecewise erf and its masks.

Either way the work goes block by block (:data:`BLOCK`: every temporary is a block's size,
not the array's), the blocks shared among the threads (:func:`.blocks.for_each_block`); on the GPU the
whole array is one block.
"""
import math

import numpy as np

from .. import backend
from .blocks import for_each_block

__all__ = ["erf", "gelu_forward", "gelu_backward", "fit_erfc_exponent"]

#: Values per block: a dozen float32 temporaries of 512 KB each. Fewer, longer NumPy calls
#: won over staying in L2: one forward over 8x128x32x32, interleaved, 1 / 2 threads:
#: 2**14 12.5 / 11.5 ms, 2**15 11.1 / 8.7, 2**16 10.3 / 7.0, 2**17 9.9 / 5.9.
BLOCK = 1 << 17

# erf(x) for the exact GELU. NumPy has no erf, so this is the classic rational
# approximation of fdlibm's s_erf.c (Sun Microsystems, 1993, freely redistributable),
# accurate to about one unit in the last place of a float64 on four intervals of |x|.
_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)


def _poly(coefs, z):
    """c0 + c1 z + c2 z^2 + ... by Horner's rule."""
    out = coefs[-1] + 0 * z
    for c in reversed(coefs[:-1]):
        out = out * z + c
    return out


def _erf_small(z):                                            # |x| < 0.84375
    return z + z * _poly(_PP, z * z) / _poly(_QQ, z * z)


def _erf_mid(z):                                              # 0.84375 <= |x| < 1.25
    return _ERX + _poly(_PA, z - 1) / _poly(_QA, z - 1)


def _erf_tail(r, q):                                          # erf = 1 - erfc out there
    def piece(z):
        s = 1 / (z * z)
        return 1 - backend.array_module(z).exp(-z * z - 0.5625 + _poly(r, s) / _poly(q, s)) / z
    return piece


def erf(x):
    """The error function of a float array (NumPy or CuPy), ``2/sqrt(pi) int_0^x e^{-t^2} dt``,
    computed in float64 and returned in the input's dtype.

    Each interval of ``|x|`` has its own formula. On NumPy each formula runs on its own
    elements only; on CuPy picking those elements (``a[mask]``) would make the host wait for
    the GPU to count them, so there every formula runs on the whole array (at a harmless
    argument, 1.0, outside its interval) and ``where`` keeps the right one.
    """
    xp = backend.array_module(x)
    a = xp.abs(x.astype(np.float64))
    out = xp.ones_like(a)                                     # erf = 1 from |x| >= 6 on
    pieces = ((a < 0.84375, _erf_small), ((a >= 0.84375) & (a < 1.25), _erf_mid),
              ((a >= 1.25) & (a < 1 / 0.35), _erf_tail(_RA, _SA)), ((a >= 1 / 0.35) & (a < 6), _erf_tail(_RB, _SB)))
    for inside, piece in pieces:
        if xp is np:
            out[inside] = piece(a[inside])
        else:
            out = xp.where(inside, piece(xp.where(inside, a, 1.0)), out)
    return (xp.sign(x) * out).astype(x.dtype, copy=False)


# ---------------------------------------------------------------------- float32 Phi
#: S(t), lowest power first, from ``fit_erfc_exponent()`` (degree 8, |x|/sqrt 2 in [0, 10]).
ERFC_EXPONENT = (-1.265203990624095, 0.993215324419841, 0.4372653214612362, -0.22711671092221009,
                 0.8283729378284735, -1.7429281884301717, 1.4375615354964353, -0.5354357065403481,
                 0.07426925416709883)


def fit_erfc_exponent(degree=8, z_max=10.0, nodes=4000, rounds=80):
    """Fit ``S`` of ``erfc(z) = t exp(-z^2 + S(t))``, ``t = 1 / (1 + z/2)``, for z in [0, z_max].

    ``S(t) = log(erfc(z)) + z^2 - log(t)`` is smooth in t, so a polynomial fits it well;
    an error in S is the *relative* error of erfc. Least squares on Chebyshev nodes in t,
    reweighted round after round towards the largest errors (Lawson's method), which
    approaches the minimax fit. Returns the coefficients, lowest power first.
    """
    t_min = 1 / (1 + z_max / 2)
    t = (t_min + 1) / 2 + (1 - t_min) / 2 * np.cos(np.linspace(0, np.pi, nodes))
    z = 2 * (1 / t - 1)
    target = np.array([math.log(math.erfc(v)) + v * v for v in z]) - np.log(t)
    basis = np.vander(t, degree + 1, increasing=True)
    weight, best = np.ones_like(t), None
    for _ in range(rounds):
        coef = np.linalg.lstsq(basis * weight[:, None], target * weight, rcond=None)[0]
        err = np.abs(basis @ coef - target)
        if best is None or err.max() < best[0]:
            best = (err.max(), coef)
        weight *= np.sqrt(err / err.mean())
        weight /= weight.mean()
    return best[1]


def _phi_float32(x):
    """``Phi(x)`` of a float32 block by the one-formula erfc (module docstring)."""
    one, dt = np.float32(1), np.float32
    t = np.abs(x)
    t *= dt(1 / (2 * math.sqrt(2)))
    t += one
    np.reciprocal(t, out=t)                                  # t = 1 / (1 + |x| / (2 sqrt 2))
    s = np.full_like(t, dt(ERFC_EXPONENT[-1]))
    for c in ERFC_EXPONENT[-2::-1]:                          # S(t) by Horner's rule
        s *= t
        s += dt(c)
    s -= np.square(x) * dt(0.5)
    np.exp(s, out=s)
    s *= t
    s *= dt(0.5)                                             # h = erfc(|x| / sqrt 2) / 2
    return np.where(x < 0, s, one - s)


def _phi(x):
    """The standard normal CDF of an array (float32 CPU blocks: the fast formula)."""
    if backend.array_module(x) is np and x.dtype == np.float32:
        return _phi_float32(x)
    return 0.5 * (1 + erf(x * (1 / math.sqrt(2))))


def _blockwise(work, *arrays):
    """``work(*blocks, out_block)`` over matching blocks of the flattened ``arrays`` (all
    of one shape), on the threads from one block up; returns the output, of that shape."""
    xp = backend.array_module(arrays[0])
    flats = [xp.ascontiguousarray(a).reshape(-1) for a in arrays]
    out = xp.empty_like(flats[0])
    for_each_block((out.size, 1, 1), lambda rows, cols: work(*(f[rows] for f in flats), out[rows]),
                   xp, block_elements=BLOCK, parallel_min=BLOCK)
    return out.reshape(arrays[0].shape)


def gelu_forward(x):
    """``x * Phi(x)`` (any shape, float32 or float64, NumPy or CuPy)."""
    xp = backend.array_module(x)

    def work(xb, out):
        xp.multiply(xb, _phi(xb), out=out)
    return _blockwise(work, x)


def gelu_backward(x, grad_out):
    """``grad_out * (Phi(x) + x phi(x))``: the input gradient of :func:`gelu_forward`."""
    xp = backend.array_module(x)

    def work(xb, gb, out):
        slope = xp.exp(xp.square(xb) * xb.dtype.type(-0.5))
        slope *= xb.dtype.type(1 / math.sqrt(2 * math.pi))     # phi(x)
        slope *= xb
        slope += _phi(xb)                                       # Phi(x) + x phi(x)
        xp.multiply(gb, slope, out=out)
    return _blockwise(work, x, grad_out)
