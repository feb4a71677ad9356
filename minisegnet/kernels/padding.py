"""Padding on raw arrays: constant, reflect, replicate and circular, one axis at a time.

Padding an axis of length ``n`` by ``lo`` before and ``hi`` after gives ``lo + n + hi``
outputs; output ``o`` reads the input at the coordinate ``c = o - lo``, and the mode
says what an outside coordinate means (example ``n = 5``, ``lo = hi = 2``)::

    constant   c outside [0, n) is the fill value        v v | 0 1 2 3 4 | v v
    reflect    mirror at the edge, edge not repeated     2 1 | 0 1 2 3 4 | 3 2
    replicate  clamp to the edge                          0 0 | 0 1 2 3 4 | 4 4
    circular   wrap around                                3 4 | 0 1 2 3 4 | 0 1

A negative ``lo`` or ``hi`` crops instead (the coordinates start inside the input).
Circular padding of a cropped axis wraps around what is left after cropping, as
PyTorch does.

Every output is a copy of one input, so padding is a *gather* with an index array per
axis (:func:`source_index`). It is done as array work without pixel loops: the middle
block is one slice copy, and each border one gather along the axis. The gradient
sends each output's gradient back to the input it was copied from: the middle block
adds back as a slice, each border as an indexed add. Within one border the indices
are distinct (reflect, circular), or all equal (replicate: the border sums into the
edge), so no scatter with repeated indices is needed. Padding several axes pads one
after the other; the backward undoes them in reverse order.
"""
import numpy as np

from .. import backend

MODES = ("constant", "reflect", "replicate", "circular")


def source_index(in_len, lo, hi, mode):
    """The int64 input index read by each of the ``lo + in_len + hi`` outputs along one axis.

    ``mode='constant'`` marks the outputs that take the fill value with -1. The caller
    checks the limits: ``lo, hi < in_len`` for reflect (one mirror image), and for
    circular at most the length left after cropping.
    """
    c = np.arange(-lo, in_len + hi, dtype=np.int64)            # input coordinate of each output
    if mode == "constant":
        return np.where((c >= 0) & (c < in_len), c, -1)
    if mode == "reflect":
        last = in_len - 1
        return last - np.abs(last - np.abs(c))
    if mode == "replicate":
        return np.clip(c, 0, in_len - 1)
    start, stop = max(-lo, 0), in_len - max(-hi, 0)            # circular: what cropping leaves
    return start + (c - start) % (stop - start)


def _along(axis, index, ndim=None, middles=None):
    """An indexing tuple that applies ``index`` to ``axis``; with ``middles`` (one slice
    or ``None`` per axis) the other axes are restricted to those slices."""
    if middles is None:
        return (slice(None),) * axis + (index,)
    return tuple(index if i == axis else (middles[i] or slice(None)) for i in range(ndim))


def _middle(in_len, lo, hi):
    """Outputs ``[a, b)`` copy inputs ``[a - lo, b - lo)`` in order; the rest are borders."""
    out_len = lo + in_len + hi
    a, b = max(lo, 0), min(lo + in_len, out_len)
    return a, max(a, b)


def _as_slice(positions):
    """``positions`` (consecutive ints, rising or falling by 1) as ``(slice, reversed)``,
    or None when they are not (replicate's repeated edge index)."""
    if len(positions) > 1 and abs(int(positions[1]) - int(positions[0])) != 1:
        return None
    low, high = int(positions.min()), int(positions.max())
    return slice(low, high + 1), len(positions) > 1 and positions[1] < positions[0]


def _borders(in_len, lo, hi, mode):
    """For one axis: the middle ``[a, b)`` and, per border, ``(output slice, sources)`` where
    ``sources`` are the border's source positions *in the output* (inside the middle)."""
    index = source_index(in_len, lo, hi, mode)
    a, b = _middle(in_len, lo, hi)
    borders = [(border, index[border] + lo) for border in (slice(0, a), slice(b, len(index)))
               if border.stop > border.start]
    return a, b, borders


def _sources_in_middle(widths, shape, mode):
    """True when every border copies from the output's middle block (always, unless a
    crop on one side removes what the other side's reflection or replication reads)."""
    for (lo, hi), n in zip(widths, shape):
        if lo or hi:
            a, b, borders = _borders(n, lo, hi, mode)
            if any(int(src.min()) < a or int(src.max()) >= b for _, src in borders):
                return False
    return True
def pad_axis(x, axis, lo, hi, mode, value=0.0):
    """Pad (or crop) one axis of ``x``; see the module docstring for the modes."""
    xp = backend.array_module(x)
    in_len = x.shape[axis]
    index = source_index(in_len, lo, hi, mode)
    a, b = _middle(in_len, lo, hi)
    shape = list(x.shape)
    shape[axis] = len(index)
    out = xp.empty(shape, dtype=x.dtype)
    out[_along(axis, slice(a, b))] = x[_along(axis, slice(a - lo, b - lo))]
    for border in (slice(0, a), slice(b, len(index))):
        if border.stop <= border.start:
            continue
        if mode == "constant":
            out[_along(axis, border)] = value
        else:
            out[_along(axis, border)] = xp.take(x, xp.asarray(index[border]), axis=axis)
    return out


def pad_axis_backward(grad_out, axis, in_len, lo, hi, mode):
    """The gradient of :func:`pad_axis`: each input collects the gradients of its copies."""
    xp = backend.array_module(grad_out)
    index = source_index(in_len, lo, hi, mode)
    a, b = _middle(in_len, lo, hi)
    shape = list(grad_out.shape)
    shape[axis] = in_len
    grad = xp.zeros(shape, dtype=grad_out.dtype)
    grad[_along(axis, slice(a - lo, b - lo))] = grad_out[_along(axis, slice(a, b))]
    if mode == "constant":
        return grad
    for border in (slice(0, a), slice(b, len(index))):
        sources = index[border]
        if len(sources) == 0:
            continue
        part = grad_out[_along(axis, border)]
        if len(np.unique(sources)) < len(sources):              # replicate: one edge index
            grad[_along(axis, slice(sources[0], sources[0] + 1))] += part.sum(axis=axis, keepdims=True)
        else:
            grad[_along(axis, xp.asarray(sources))] += part
    return grad


def pad_forward(x, widths, mode, value=0.0):
    """Pad every axis of ``x`` by its ``(lo, hi)`` in ``widths`` (one pair per axis).

    One pass: the input goes once into the middle of the output; then, from the last
    axis to the first, each border is filled by copying already-filled output slices
    (the middle along that axis, everything along the axes done before). Copying from
    the output rather than the input gives the corners for free: the top rows copy
    rows that already have their left and right borders.
    """
    xp = backend.array_module(x)
    if mode != "constant" and not _sources_in_middle(widths, x.shape, mode):
        for axis, (lo, hi) in enumerate(widths):          # axis by axis from the input
            if lo or hi:
                x = pad_axis(x, axis, lo, hi, mode, value)
        return x
    plans = [_borders(n, lo, hi, mode) for (lo, hi), n in zip(widths, x.shape)]
    out = xp.empty(tuple(lo + n + hi for (lo, hi), n in zip(widths, x.shape)), dtype=x.dtype)
    out[tuple(slice(a, b) for a, b, _ in plans)] = \
        x[tuple(slice(a - lo, b - lo) for (a, b, _), (lo, _hi) in zip(plans, widths))]
    middles = [slice(a, b) for a, b, _ in plans]
    for axis in reversed(range(x.ndim)):
        middles[axis] = None                               # this axis and later ones: full
        for border, sources in plans[axis][2]:
            target = _along(axis, border, x.ndim, middles)
            if mode == "constant":
                out[target] = value
                continue
            as_slice = _as_slice(sources)
            if as_slice is None:                           # replicate: the edge, broadcast
                edge = slice(int(sources[0]), int(sources[0]) + 1)
                out[target] = out[_along(axis, edge, x.ndim, middles)]
            else:
                part = out[_along(axis, as_slice[0], x.ndim, middles)]
                out[target] = xp.flip(part, axis) if as_slice[1] else part
    return out


def pad_backward(grad_out, in_shape, widths, mode):
    """The gradient of :func:`pad_forward`, shape ``in_shape``.

    The forward in reverse: from the first axis to the last, each border's gradient is
    added onto the slice it was copied from (a replicate border sums onto its edge),
    then the middle block is the input's gradient.
    """
    xp = backend.array_module(grad_out)
    if mode != "constant" and not _sources_in_middle(widths, in_shape, mode):
        for axis in reversed(range(len(widths))):
            lo, hi = widths[axis]
            if lo or hi:
                grad_out = pad_axis_backward(grad_out, axis, in_shape[axis], lo, hi, mode)
        return grad_out
    plans = [_borders(n, lo, hi, mode) for (lo, hi), n in zip(widths, in_shape)]
    middle = tuple(slice(a, b) for a, b, _ in plans)
    inner = tuple(slice(a - lo, b - lo) for (a, b, _), (lo, _hi) in zip(plans, widths))
    if min(lo for lo, _ in widths) >= 0 and min(hi for _, hi in widths) >= 0 and \
            (mode == "constant" or all(not plan[2] for plan in plans)):
        return grad_out[middle]                          # no crop, no copies: a view
    grad = xp.zeros(in_shape, dtype=grad_out.dtype)
    if mode == "constant" or all(not plan[2] for plan in plans):
        grad[inner] = grad_out[middle]
        return grad
    g = grad_out.copy()
    middles = [None] * len(in_shape)
    for axis in range(len(in_shape)):
        for border, sources in plans[axis][2]:
            part = g[_along(axis, border, len(in_shape), middles)]
            as_slice = _as_slice(sources)
            if as_slice is None:
                edge = slice(int(sources[0]), int(sources[0]) + 1)
                g[_along(axis, edge, len(in_shape), middles)] += part.sum(axis=axis, keepdims=True)
            else:
                g[_along(axis, as_slice[0], len(in_shape), middles)] += (
                    xp.flip(part, axis) if as_slice[1] else part)
        middles[axis] = slice(plans[axis][0], plans[axis][1])
    grad[inner] = g[middle]
    return grad
