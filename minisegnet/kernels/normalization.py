"""Array kernels for the normalising ops: batch norm, layer norm, softmax / log-softmax,
and the fused softmax cross-entropy. Plain functions on NumPy or CuPy arrays; no autograd.

Every kernel here works on a 3-d view ``(A, C, B)`` of its input, where ``C`` is the
axis being normalised (the channel axis of batch norm, the class axis of softmax) and
``A``, ``B`` are everything before and after it:

    (N, C)        -> (N, C, 1)           softmax over classes of a batch of vectors
    (N, C, H, W)  -> (N, C, H*W)         per-pixel softmax, per-channel batch norm

so one code path serves vectors and images, and no transpose is ever needed: the
reductions run over axis 1 of that view, in place.

Speed on the CPU: every kernel runs block by block, on the threads
(:mod:`minisegnet.kernels.blocks`).

Fewer passes where one can be saved: batch norm applies a following ReLU inside its own
blocks (``relu=True``), and softmax skips its max shift on blocks of ordinary logits
(:func:`_exp_and_sum`).
"""
import numpy as np

from .. import backend
# as_3d and blocks are used from here by the ops and tests
from .blocks import as_3d, blocks, for_each_block  # noqa: F401
from .relu import channel_sum
from .relu import relu as relu_kernel


# ---------------------------------------------------------------------- partial sums
def _channel_sum(parts, dtype=np.float64):
    """Add per-block partial sums (each of shape (C,)) in float64."""
    total = parts[0].astype(dtype)
    for p in parts[1:]:
        total = total + p
    return total


#: Per-channel coefficients are spread along the rows (:func:`_col`) when that makes at
#: most this many values.
SPREAD_MAX_ELEMENTS = 1 << 18


def _col(v, dtype, width=1):
    """A per-channel vector (C,) as a (1, C, 1) array that broadcasts over (A, C, B) blocks.

    With ``width > 1`` (on the CPU, up to :data:`SPREAD_MAX_ELEMENTS` values) it is
    spread along the rows instead: (1, C, width), each value repeated ``width`` times.
    Against a column NumPy loops once per (image, channel) row of the block -- slow on
    short rows, e.g. 8x8 maps -- against a spread array it runs once along the whole
    contiguous block (multiply-add of 8x576x4x4: 75 -> 23 us; 8x16x64x64: 202 -> 129 us).
    Take a block's part with :func:`_cols`.
    """
    v = v.astype(dtype, copy=False)
    if width > 1 and isinstance(v, np.ndarray) and v.size * width <= SPREAD_MAX_ELEMENTS:
        return np.repeat(v, width).reshape(1, -1, width)
    return v.reshape(1, -1, 1)


def _cols(coef, cols):
    """The part of a :func:`_col` array for the block columns ``cols`` (all of a column)."""
    return coef if coef.shape[2] == 1 else coef[:, :, cols]


# ---------------------------------------------------------------------- batch norm
def batch_statistics(x3):
    """Per-channel mean and biased variance of an ``(N, C, S)`` array, over N and S.

    Each block computes its own mean and sum of squared deviations ``M2`` while it is in
    the cache, by the *corrected two-pass* formula: with ``m`` the block's mean from a
    first float32 sum and ``d = x - m``,

        mean_b = m + sum(d) / n        M2_b = sum(d^2) - sum(d)^2 / n

    The correction ``sum(d)`` removes the rounding error of ``m`` (the one-pass
    ``E[x^2] - E[x]^2`` would lose all precision in float32 when the mean is large). The
    blocks are then merged exactly (Chan et al.'s parallel variance):

        mean = sum_b n_b mean_b / n        M2 = sum_b (M2_b + n_b (mean_b - mean)^2)

    so the whole array is read from memory once. Returns float64 arrays of shape (C,).
    """
    xp = backend.array_module(x3)

    def moments(rows, cols):
        xb = x3[rows, :, cols]
        n = xb.shape[0] * xb.shape[2]
        if xb.shape[2] == 1:
            # (N, C) inputs: NumPy's sum runs across N one row after another, so
            # accumulate in float64 there
            m = xb.sum(axis=(0, 2), dtype=np.float64) / n
        elif xb.shape[2] < 64:
            # short rows (4x4, 8x8 maps): one BLAS dot per row, then the N row sums in
            # float64 (5-8x faster than a float64 sum over both axes)
            m = (xb @ xp.ones(xb.shape[2], dtype=xb.dtype)).sum(axis=0, dtype=np.float64) / n
        else:
            m = channel_sum(xb, (0, 2)).astype(np.float64) / n
        d = xb - _col(m, xb.dtype, xb.shape[2])
        s1 = channel_sum(d, (0, 2)).astype(np.float64)
        s2 = xp.einsum("ncs,ncs->c", d, d).astype(np.float64)
        return n, m + s1 / n, s2 - s1 * s1 / n

    parts = for_each_block(x3.shape, moments, xp)
    count = sum(n for n, _, _ in parts)
    mean = _channel_sum([n * m for n, m, _ in parts]) / count
    m2 = _channel_sum([m2 + n * (m - mean) ** 2 for n, m, m2 in parts])
    return mean, m2 / count


def scale_shift(x3, scale, shift, relu=False):
    """``y = x * scale + shift`` with per-channel (C,) ``scale`` and ``shift``: (N, C, S) -> (N, C, S).

    ``relu=True`` also applies ``max(y, 0)`` to each block while it is in the cache: a
    fused batch norm + ReLU, one pass over memory instead of two.
    """
    xp = backend.array_module(x3)
    y = xp.empty(x3.shape, dtype=x3.dtype)
    scale, shift = _col(scale, x3.dtype, x3.shape[2]), _col(shift, x3.dtype, x3.shape[2])

    def work(rows, cols):
        out = y[rows, :, cols]
        xp.multiply(x3[rows, :, cols], _cols(scale, cols), out=out)
        out += _cols(shift, cols)
        if relu:
            relu_kernel(out, out=out)

    for_each_block(x3.shape, work, xp)
    return y


def batch_norm_grad_sums(dy3, x3, mean, relu_out=None):
    """Per-channel ``sum(dy)`` and ``sum(dy * (x - mean))`` over N and S (float64, shape (C,)).

    With ``relu_out`` (the output y of a fused batch norm + ReLU), the gradient first
    passes back through the ReLU, ``dy * (y > 0)``, block by block; that masked gradient
    is returned too, as a new array: ``(sum_dy, sum_dy_xc, masked_dy)``.
    """
    xp = backend.array_module(x3)
    masked = None if relu_out is None else xp.empty(dy3.shape, dtype=dy3.dtype)
    mean = _col(mean, x3.dtype, x3.shape[2])

    def work(rows, cols):
        g = dy3[rows, :, cols]
        if masked is not None:
            g = xp.multiply(g, relu_out[rows, :, cols] > 0, out=masked[rows, :, cols])
        centred = x3[rows, :, cols] - _cols(mean, cols)
        return channel_sum(g, (0, 2)), xp.einsum("ncs,ncs->c", g, centred)

    parts = for_each_block(x3.shape, work, xp)
    sums = _channel_sum([p[0] for p in parts]), _channel_sum([p[1] for p in parts])
    return sums if masked is None else sums + (masked,)


def affine_combination(dy3, x3, a, b, c, out=None):
    """``dx = a * dy + b * x + c`` with per-channel (C,) ``a``, ``b``, ``c``: the batch-norm
    input gradient once its per-channel coefficients are known. ``out`` (may be ``dy3``
    itself, when dy is a temporary) receives dx; default: a new array."""
    xp = backend.array_module(x3)
    dx = xp.empty(x3.shape, dtype=x3.dtype) if out is None else out
    a, b, c = (_col(v, x3.dtype, x3.shape[2]) for v in (a, b, c))

    def work(rows, cols):
        block = dx[rows, :, cols]
        xp.multiply(dy3[rows, :, cols], _cols(a, cols), out=block)       # first: block may be dy's own
        block += x3[rows, :, cols] * _cols(b, cols)
        block += _cols(c, cols)

    for_each_block(x3.shape, work, xp)
    return dx


# ---------------------------------------------------------------------- layer norm
def layer_norm_forward(x2, weight, bias, eps):
    """Layer norm of every row of ``x2`` (T tokens, D features): returns ``(y, xhat, inv_std)``.

    ``xhat = (x - mean) * inv_std`` with the row's mean and ``inv_std = 1 / sqrt(var + eps)``
    (biased variance; (T, 1)), ``y = xhat * weight + bias`` (weight, bias: (D,) or None).
    A (T, D) array is an ``(A, C, B) = (T, D, 1)`` view here: blocks of whole rows, every
    pass over a block while it is in the cache, the blocks on the threads. The row sums of
    squares are one matrix-vector product per block (BLAS), not a reduction per short row.
    """
    xp = backend.array_module(x2)
    t, d = x2.shape
    y, xhat = xp.empty_like(x2), xp.empty_like(x2)
    inv_std = xp.empty((t, 1), dtype=x2.dtype)
    by_d = xp.full((d, 1), 1.0 / d, dtype=x2.dtype)

    def work(rows, cols):
        xb, c, out = x2[rows], xhat[rows], y[rows]
        xp.subtract(xb, xb.mean(axis=1, keepdims=True), out=c)
        inv = xp.square(c) @ by_d                            # the variance of each row
        inv += eps
        xp.sqrt(inv, out=inv)
        xp.reciprocal(inv, out=inv)
        inv_std[rows] = inv
        c *= inv
        if weight is None:
            out[...] = c
        else:
            xp.multiply(c, weight, out=out)
        if bias is not None:
            out += bias

    for_each_block((t, d, 1), work, xp)
    return y, xhat, inv_std


def layer_norm_backward(dy2, xhat, inv_std, weight, need_x=True, need_w=True, need_b=True):
    """Gradients of :func:`layer_norm_forward` from ``dy2`` (T, D): ``(dx, dweight, dbias)``
    (None for those not needed). With ``gw = dy * weight`` and means over a row's D values::

        dx = inv_std * (gw - mean(gw) - xhat * mean(gw * xhat))
        dweight = sum over rows of dy * xhat,        dbias = sum over rows of dy
    """
    xp = backend.array_module(dy2)
    t, d = dy2.shape
    dx = xp.empty_like(dy2) if need_x else None
    by_d = xp.full((d, 1), 1.0 / d, dtype=dy2.dtype)

    def work(rows, cols):
        g, xh = dy2[rows], xhat[rows]
        if need_x:
            gw = g if weight is None else g * weight
            out = dx[rows]
            xp.multiply(xh, (gw * xh) @ by_d, out=out)       # xhat * mean(gw * xhat)
            out += gw @ by_d
            xp.subtract(gw, out, out=out)
            out *= inv_std[rows]
        return (xp.einsum("td,td->d", g, xh) if need_w else None,
                g.sum(axis=0) if need_b else None)

    parts = for_each_block((t, d, 1), work, xp)
    dweight = _channel_sum([p[0] for p in parts], dy2.dtype) if need_w else None
    dbias = _channel_sum([p[1] for p in parts], dy2.dtype) if need_b else None
    return dx, dweight, dbias


# ---------------------------------------------------------------------- softmax
def _unshifted_floor(dtype):
    """The smallest sum of exponentials the unshifted path accepts: 2**mantissa-bits above
    the smallest normal number, so that even a tiny probability loses nothing that
    matters (its absolute error stays below 1e-14)."""
    info = np.finfo(dtype)
    return float(info.tiny) * 2.0 ** info.nmant


def _exp_and_sum(xp, xb, out):
    """``out = exp(x - m)`` and its sums over axis 1, ``(total, m)``, for a block ``xb``.

    The shift ``m = max(x)`` over the axis keeps exp from overflowing, and cancels in
    every result: softmax ``out / total``, log-softmax ``(x - m) - log(total)``. But it
    costs two passes over the block (the max, the subtraction) of the five a softmax
    makes. So on the CPU the plain ``exp(x)`` is tried first and kept when every sum is
    finite and far from underflow -- any logits within about +-80 of zero in float32 --
    and ``m`` is then None (no shift). Otherwise, and always on the GPU (the test would
    make the device wait for the host), the block is done again with the shift.
    """
    if xp is np:
        with np.errstate(over="ignore", invalid="ignore"):
            np.exp(xb, out=out)
            total = out.sum(axis=1, keepdims=True)
            if np.isfinite(total).all() and total.min() >= _unshifted_floor(out.dtype):
                return total, None
    m = xb.max(axis=1, keepdims=True)
    xp.subtract(xb, m, out=out)
    xp.exp(out, out=out)
    return out.sum(axis=1, keepdims=True), m


def softmax(x3, log=False):
    """Softmax (or log-softmax) over axis 1 of an ``(A, C, B)`` array, stably.

    ``softmax(x) = exp(x - m) / sum(exp(x - m))`` with a shift ``m`` (the max over the axis,
    when needed: :func:`_exp_and_sum`) that cancels but keeps ``exp`` from overflowing.
    ``log_softmax(x) = (x - m) - log(sum(exp(x - m)))``.
    """
    xp = backend.array_module(x3)
    y = xp.empty(x3.shape, dtype=x3.dtype)

    def work(rows, cols):
        xb, yb = x3[rows, :, cols], y[rows, :, cols]
        total, m = _exp_and_sum(xp, xb, yb)
        if log:
            if m is None:
                xp.subtract(xb, xp.log(total), out=yb)
            else:
                xp.subtract(xb, m, out=yb)
                yb -= xp.log(total)
        else:
            yb *= 1 / total                                # one division per pixel, not per class

    for_each_block(x3.shape, work, xp)
    return y


def softmax_backward(y3, g3, log=False):
    """Input gradient of (log-)softmax over axis 1, from its output ``y`` and upstream ``g``.

    softmax:     dx = y * (g - sum(g * y))
    log-softmax: dx = g - exp(y) * sum(g)      (exp(y) is the softmax)
    """
    xp = backend.array_module(y3)
    dx = xp.empty(y3.shape, dtype=y3.dtype)

    def work(rows, cols):
        yb, gb, out = y3[rows, :, cols], g3[rows, :, cols], dx[rows, :, cols]
        if log:
            xp.exp(yb, out=out)
            out *= gb.sum(axis=1, keepdims=True)
            xp.subtract(gb, out, out=out)
        else:       # sum(g * y) as one dot per pixel: no product array written and re-read
            xp.subtract(gb, xp.einsum("acb,acb->ab", gb, yb)[:, None, :], out=out)
            out *= yb

    for_each_block(y3.shape, work, xp)
    return dx


def softmax_cross_entropy(x3, target, coef=None):
    """Fused log-softmax + negative log-likelihood over axis 1 of ``(N, C, S)`` logits.

    Args:
        x3: logits (N, C, S).
        target: class indices (N, S), every entry in [0, C) (ignored pixels already
            replaced by any valid class; their weight is zero).
        coef: (N, S) factor of each pixel's loss in the total, or None when no
            gradient is needed.

    Returns ``(loss, grad)``: ``loss[n, s] = logsumexp(x[n, :, s]) - x[n, target, s]``
    (N, S), and ``grad = (softmax(x) - onehot(target)) * coef`` (N, C, S), the gradient
    of ``sum(coef * loss)``, or None. The one-hot is never built: the softmax is scaled
    by ``coef`` and ``coef`` is subtracted at the one target entry per pixel.
    """
    xp = backend.array_module(x3)
    x3 = xp.ascontiguousarray(x3)
    n, c, s = x3.shape
    loss = xp.empty((n, s), dtype=x3.dtype)
    grad = xp.empty(x3.shape, dtype=x3.dtype) if coef is not None else None
    x_flat = x3.reshape(-1)

    def work(rows, cols):
        xb = x3[rows, :, cols]
        e = grad[rows, :, cols] if grad is not None else xp.empty(xb.shape, dtype=xb.dtype)
        total, m = _exp_and_sum(xp, xb, e)                        # sum exp(x - m), (n, 1, s)
        lse = xp.log(total) if m is None else xp.log(total) + m   # logsumexp(x)
        # flat position of x[i, target[i, j], j] in the whole array, for the block's i, j
        i = xp.arange(rows.start, rows.stop)[:, None]
        j = xp.arange(cols.start, cols.stop)[None, :]
        at_target = ((i * c + target[rows, cols]) * s + j).reshape(-1)
        loss[rows, cols] = lse[:, 0, :] - xp.take(x_flat, at_target).reshape(total.shape[0], -1)
        if grad is not None:
            cb = coef[rows, cols]
            e *= (cb / total[:, 0, :])[:, None, :]                 # softmax * coef
            grad_flat = grad.reshape(-1)
            grad_flat[at_target] -= cb.reshape(-1)                 # - onehot * coef

    for_each_block(x3.shape, work, xp)
    return loss, grad
