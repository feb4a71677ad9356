"""2-D convolution on raw arrays: the forward product and the two backward products.

Shapes are PyTorch's: input ``x`` (N, C, H, W), weight ``w`` (O, C/groups, kh, kw),
output ``y`` (N, O, Ho, Wo). With stride (sh, sw), dilation (dh, dw) and the top/left
padding (pt, pl), kernel tap (i, j) links output pixel (yo, xo) to input pixel

    r = sh*yo + i*dh - pt,      c = sw*xo + j*dw - pl,

    y[n, o, yo, xo] = sum_{c', i, j} w[o, c', i, j] * x[n, c0 + c', r, c]

where c0 is the first input channel of o's group, and a pixel (r, c) outside the
image is padding (zero). The output size comes from the caller, so asymmetric padding
('same' with an even kernel) and conv_transpose2d's output_padding need no special case:
only the top/left padding decides *where* taps read.

**One matrix product per kernel tap.** Tap (i, j) on its own is a 1x1 convolution of a
shifted (and strided) view of the input: ``y += W_ij @ X_ij`` with ``W_ij = w[:, :, i, j]``
of shape (O, C) and ``X_ij`` of shape (C, Ho*Wo). The textbook *im2col* copies all
kh*kw views into one (C*kh*kw, Ho*Wo) matrix -- nine copies of the input for a 3x3
kernel -- and does a single product. Here each view is a *slice* instead of a copy:

* a **band** gathers, once, the input columns that one kernel column j reads:
  ``B[c, u, v] = x[c, sh*u + ra, sw*(x0 + v) + j*dw - pl]`` of shape (C, U, Wj), where
  output columns x0..x0+Wj-1 are those whose tap reads inside the image;
* in a band, one output row down is exactly Wj elements further, so the view that tap
  (i, j) needs for output rows y0..y1-1 is the contiguous slice
  ``B.reshape(C, U*Wj)[:, (y0+qi)*Wj : (y1+qi)*Wj]`` with ``qi = (i*dh - pt - ra) / sh``;
* a stride sh > 1 in rows splits the rows into sh *row phases* ``ra = (i*dh - pt) mod sh``
  (one band per phase and kernel column), so the slice stays contiguous.

kw band copies replace kh*kw im2col copies, and a band that *is* the input (stride 1,
all columns: the middle column of a padded 3x3 kernel, any 1x1 kernel) is not copied at
all -- a 1x1 convolution is a single matrix product. Every tap multiplies only the rows
and columns where it reads real input, and taps that would read only padding are
skipped: with a large dilation on a small map (dilation 12 on a 16x16 map) most of a
3x3 kernel hangs over the padding, and that work is never done.

The backward products are the same slices read the other way round:

* grad weight: ``dW_ij = dY_band @ X_ij^T`` (O, C), summed over the images;
* grad input:  ``dX_ij = W_ij^T @ dY_band`` added into the band's slice, and the band
  added back into the input's columns -- *col2im* as kw strided slice additions.

conv_transpose2d *is* the grad-input product (its input plays dY), so it needs no
kernel of its own (see :mod:`minisegnet.functional.conv`).

On the CPU a batch is split over threads, one block of images each, with the BLAS
library held at one thread meanwhile (BLAS and NumPy's copies release the GIL, so the
threads run in parallel); this needs ``threadpoolctl`` and is skipped without it. On the
GPU (CuPy) the same code runs once over the whole batch: every step is a strided copy
or a batched matrix product, which CuPy already does well.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import backend

__all__ = ["conv2d_forward", "conv2d_backward", "conv_output_size", "ConvPlan",
           "num_threads", "set_num_threads", "parallel_over_batch"]


# --------------------------------------------------------------------------- geometry

def conv_output_size(size, kernel, stride=1, pad_before=0, pad_after=0, dilation=1):
    """Output length of a convolution along one axis (PyTorch's formula, floor division):

        out = (size + pad_before + pad_after - dilation*(kernel - 1) - 1) // stride + 1
    """
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def _ceil_div(a, b):
    return -((-a) // b)


class Band:
    """The input columns one kernel column reads, for one row phase (see the module docstring).

    Attributes: ``ra`` row phase (input row of band row u is ``sh*u + ra``); ``j`` kernel
    column; ``x0, x1`` the output columns it serves; ``c0`` the input column of x0;
    ``rows`` the band's row count U; ``taps`` a list of ``(i, qi, y0, y1)``: kernel row i
    serves output rows y0..y1-1 and reads band rows y0+qi..y1+qi-1.
    """

    def __init__(self, ra, j, x0, x1, c0, taps):
        self.ra, self.j, self.x0, self.x1, self.c0 = ra, j, x0, x1, c0
        self.taps = sorted(taps, key=lambda t: t[2] - t[3])   # widest first: written, not added
        self.rows = max(qi + y1 for _, qi, _, y1 in taps)

    @property
    def width(self):
        return self.x1 - self.x0


class ConvPlan:
    """Which taps do work and which bands they read, for one convolution geometry.

    Args:
        in_hw: input (H, W); out_hw: output (Ho, Wo); kernel: (kh, kw);
        stride, padding (top, left), dilation: pairs.
    """

    def __init__(self, in_hw, out_hw, kernel, stride, padding, dilation):
        (H, W), (Ho, Wo) = in_hw, out_hw
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = kernel, stride, padding, dilation
        self.in_hw, self.out_hw, self.kernel, self.stride = (H, W), (Ho, Wo), (kh, kw), (sh, sw)
        rows = []                                   # (i, ra, qi, y0, y1) for kernel rows doing work
        for i in range(kh):
            off = i * dh - pt                       # input row read by output row 0
            y0, y1 = max(0, _ceil_div(-off, sh)), min(Ho, (H - 1 - off) // sh + 1)
            if y0 < y1:
                ra = off % sh
                rows.append((i, ra, (off - ra) // sh, y0, y1))
        self.bands = []
        for j in range(kw):
            off = j * dw - pl                       # input column read by output column 0
            x0, x1 = max(0, _ceil_div(-off, sw)), min(Wo, (W - 1 - off) // sw + 1)
            if x0 >= x1:
                continue                            # this kernel column only ever sees padding
            for ra in sorted({r[1] for r in rows}):
                taps = [(i, qi, y0, y1) for i, r, qi, y0, y1 in rows if r == ra]
                self.bands.append(Band(ra, j, x0, x1, sw * x0 + off, taps))
        self.bands.sort(key=lambda b: -b.width)
        self.n_taps = sum(len(b.taps) for b in self.bands)

    def is_identity(self, band):
        """True when the band is the input itself (rows 0..U-1, all columns): no copy needed."""
        return self.stride == (1, 1) and band.c0 == 0 and band.width == self.in_hw[1]

    def is_full_width(self, band):
        return band.x0 == 0 and band.x1 == self.out_hw[1]

    def band_view(self, x, band):
        """The (nb, C, U, Wj) strided view of ``x`` (nb, C, H, W) that ``band`` gathers."""
        sh, sw = self.stride
        return x[:, :, band.ra: band.ra + sh * (band.rows - 1) + 1: sh,
                 band.c0: band.c0 + sw * (band.width - 1) + 1: sw]

    def flops(self, n, c_in, c_out, groups):
        """Multiply-adds x2 actually done (taps over padding skipped), for benchmarks."""
        per = sum(b.width * (y1 - y0) for b in self.bands for _, _, y0, y1 in b.taps)
        return 2 * n * per * (c_in // groups) * c_out


# --------------------------------------------------------------------------- building blocks

class _Scratch:
    """Reusable work buffers of one thread, by name (grown as needed)."""

    def __init__(self, xp, dtype):
        self.xp, self.dtype, self.buffers = xp, dtype, {}

    def get(self, name, shape):
        size = int(np.prod(shape))
        buf = self.buffers.get(name)
        if buf is None or buf.size < size:
            buf = self.buffers[name] = self.xp.empty(size, dtype=self.dtype)
        return buf[:size].reshape(shape)


def _product(xp, a, b, out=None):
    """``a @ b`` over the last two axes, broadcast over the leading ones (into ``out``)."""
    if a.shape[-1] == 1:                    # a one-element contraction is a broadcast multiply
        return xp.multiply(a, b, out=out)   # (depthwise convolution takes this path)
    return xp.matmul(a, b, out=out)


class _Sum:
    """An array that products are added into, written directly by the first one that covers it.

    ``dst`` starts as garbage (``zeroed=False``) or zeros. Adding a product into a view of
    it computes into a scratch buffer and adds, except for the very first product when
    its view covers all of ``dst``: that one is written straight into place. So a 3x3
    convolution costs one direct write and eight additions, not nine of each.
    """

    def __init__(self, xp, dst, scratch, zeroed=False):
        self.xp, self.dst, self.scratch = xp, dst, scratch
        self.fresh, self.zeroed = True, zeroed

    def _overwrite(self, view):
        """Whether ``view`` may be overwritten rather than added to (zeroing dst if needed)."""
        if self.fresh:
            self.fresh = False
            if view.size == self.dst.size:
                return True
            if not self.zeroed:
                self.dst[...] = 0
        return False

    def add_product(self, a, b, view):
        """``view += a @ b`` (``view`` is a view into dst)."""
        xp = self.xp
        if self._overwrite(view):
            if xp is np:
                _product(xp, a, b, out=view)
            else:
                view[...] = _product(xp, a, b)
        elif xp is np:
            tmp = self.scratch.get("product", view.shape)
            view += _product(xp, a, b, out=tmp)
        else:
            view += _product(xp, a, b)

    def add(self, value, view):
        """``view += value`` (``view`` is a view into dst)."""
        if self._overwrite(view):
            view[...] = value
        else:
            view += value

    def finish(self):
        """Make sure dst holds a value (zeros if nothing was ever added)."""
        if self.fresh and not self.zeroed:
            self.dst[...] = 0
        self.fresh = False


def _band_input(xp, x, band, plan, scratch, groups):
    """The band of ``x`` (nb, C, H, W) as (nb, groups, C/groups, U*Wj): a view or a copy."""
    nb, C, H, W = x.shape
    if plan.is_identity(band) and x.flags.c_contiguous:
        flat = x.reshape(nb, C, H * W)[:, :, :band.rows * W]
    else:
        buf = scratch.get("band", (nb, C, band.rows, band.width))
        buf[...] = plan.band_view(x, band)
        flat = buf.reshape(nb, C, band.rows * band.width)
    return flat.reshape(nb, groups, C // groups, flat.shape[-1])


# --------------------------------------------------------------------------- threads

_thread_override = None
_default_threads = None
_blas_libs = None                      # threadpoolctl controllers of the BLAS libraries, or []
_pool = None
_pool_lock = threading.Lock()          # held while the pool runs: nested calls go serial


def _blas_libraries():
    global _blas_libs
    if _blas_libs is None:
        try:
            from threadpoolctl import ThreadpoolController
            _blas_libs = [lib for lib in ThreadpoolController().lib_controllers
                          if lib.user_api == "blas"]
        except Exception:              # threadpoolctl missing or failing: no thread splitting
            _blas_libs = []
    return _blas_libs


def num_threads():
    """Threads a CPU convolution uses: ``set_num_threads``, else ``$MINISEGNET_NUM_THREADS``,
    else BLAS's own thread count (normally the number of cores)."""
    global _default_threads
    if _thread_override is not None:
        return _thread_override
    env = os.environ.get("MINISEGNET_NUM_THREADS", "").strip()
    if env:
        return max(1, int(env))
    if _default_threads is None:
        libs = _blas_libraries()
        _default_threads = max([lib.num_threads for lib in libs] or [os.cpu_count() or 1])
    return _default_threads


def set_num_threads(n):
    """Use ``n`` threads for CPU convolutions (``None``: back to the default)."""
    global _thread_override
    _thread_override = None if n is None else max(1, int(n))


def parallel_over_batch(fn, n_items, xp=np):
    """Run ``fn(start, stop)`` over contiguous blocks of ``range(n_items)``, one per thread.

    Returns the list of results. Runs a single ``fn(0, n_items)`` on the GPU, with one
    thread or item, without threadpoolctl, or when already inside a parallel section.
    While the threads run, BLAS is held at one thread each so that the cores are not
    oversubscribed (each thread's matrix products are big enough on their own).
    """
    global _pool
    threads = min(num_threads(), n_items)
    libs = _blas_libraries() if xp is np and threads > 1 else []
    if not libs or not _pool_lock.acquire(blocking=False):
        return [fn(0, n_items)]
    try:
        if _pool is None or _pool._max_workers < threads:
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="minisegnet")
        bounds = [n_items * t // threads for t in range(threads + 1)]
        previous = [lib.num_threads for lib in libs]
        for lib in libs:
            lib.set_num_threads(1)
        try:
            return list(_pool.map(fn, bounds[:-1], bounds[1:]))
        finally:
            for lib, n in zip(libs, previous):
                lib.set_num_threads(n)
    finally:
        _pool_lock.release()


def _images_per_step(xp, n, image_elements):
    """Images a thread handles at once: one on the CPU unless images are tiny; all on the GPU."""
    if xp is not np:
        return n
    return max(1, min(n, (1 << 15) // max(1, image_elements)))


# --------------------------------------------------------------------------- the kernels

def _tap_weights(weight, groups):
    """(O, C/g, kh, kw) -> W_ij as (kh, kw, g, O/g, C/g) and W_ij^T as (kh, kw, g, C/g, O/g)."""
    xp = backend.array_module(weight)
    O, Cg, kh, kw = weight.shape
    w = weight.reshape(groups, O // groups, Cg, kh, kw)
    return (xp.ascontiguousarray(w.transpose(3, 4, 0, 1, 2)),
            xp.ascontiguousarray(w.transpose(3, 4, 0, 2, 1)))


def _pairs(stride, padding, dilation):
    pair = lambda v: (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))
    return pair(stride), pair(padding), pair(dilation)


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                   out_hw=None):
    """``y = conv2d(x, weight) + bias``; arguments already checked by the caller.

    Args:
        x: (N, C, H, W); weight: (O, C/groups, kh, kw); bias: (O,) or None.
        stride, dilation: int or pair; padding: int or pair ``(top, left)``.
        out_hw: output (Ho, Wo); default: symmetric padding (PyTorch's formula).

    Returns y (N, O, Ho, Wo), a new C-contiguous array of x's dtype.
    """
    xp = backend.array_module(x, weight)
    (sh, sw), (pt, pl), (dh, dw) = _pairs(stride, padding, dilation)
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    if out_hw is None:
        out_hw = (conv_output_size(H, kh, sh, pt, pt, dh), conv_output_size(W, kw, sw, pl, pl, dw))
    Ho, Wo = out_hw
    plan = ConvPlan((H, W), out_hw, (kh, kw), (sh, sw), (pt, pl), (dh, dw))
    wt, _ = _tap_weights(weight, groups)
    y = xp.empty((N, O, Ho, Wo), dtype=x.dtype)
    step = _images_per_step(xp, N, C * H * W + O * Ho * Wo)
    bias_b = None if bias is None else bias.reshape(1, O, 1, 1)

    def work(start, stop):
        scratch = _Scratch(xp, x.dtype)
        for n0 in range(start, stop, step):
            n1 = min(stop, n0 + step)
            xs, ys = x[n0:n1], y[n0:n1]
            nb = n1 - n0
            ysum = _Sum(xp, ys, scratch)
            yflat = ys.reshape(nb, groups, O // groups, Ho * Wo)
            for band in plan.bands:
                bx = _band_input(xp, xs, band, plan, scratch, groups)
                Wj = band.width
                if plan.is_full_width(band):
                    out, acc = yflat, ysum          # the band is the output itself: add in place
                else:
                    out = scratch.get("band_out", (nb, groups, O // groups, Ho * Wj))
                    acc = _Sum(xp, out, scratch)
                for i, qi, y0, y1 in band.taps:
                    acc.add_product(wt[i, band.j], bx[..., (y0 + qi) * Wj:(y1 + qi) * Wj],
                                    out[..., y0 * Wj:y1 * Wj])
                if out is not yflat:
                    ysum.add(out.reshape(nb, O, Ho, Wj), ys[:, :, :, band.x0:band.x1])
            ysum.finish()
            if bias_b is not None:
                ys += bias_b

    parallel_over_batch(work, N, xp)
    return y


def conv2d_backward(grad_out, x, weight, stride=1, padding=0, dilation=1, groups=1,
                    input_shape=None, need_input=True, need_weight=True, need_bias=False):
    """The gradients of ``y = conv2d(x, weight) + bias`` given ``grad_out`` = dL/dy.

    Args:
        grad_out: (N, O, Ho, Wo); x: (N, C, H, W), or None when ``need_weight`` is False
            (then ``input_shape`` gives (N, C, H, W)); weight: (O, C/groups, kh, kw).
        stride, padding ``(top, left)``, dilation, groups: as in :func:`conv2d_forward`.
        need_input, need_weight, need_bias: which gradients to compute.

    Returns ``(grad_x, grad_weight, grad_bias)``, None for those not asked for:
        grad_x (N, C, H, W) = sum over taps of W_ij^T @ dY, put back where tap (i, j) read;
        grad_weight (O, C/groups, kh, kw): dW_ij = sum_n dY @ X_ij^T;
        grad_bias (O,) = grad_out summed over N, Ho, Wo.
    """
    xp = backend.array_module(grad_out, weight)
    (sh, sw), (pt, pl), (dh, dw) = _pairs(stride, padding, dilation)
    N, C, H, W = x.shape if x is not None else tuple(input_shape)
    O, Cg, kh, kw = weight.shape
    Ho, Wo = grad_out.shape[2:]
    gy = xp.ascontiguousarray(grad_out)
    dtype = gy.dtype
    plan = ConvPlan((H, W), (Ho, Wo), (kh, kw), (sh, sw), (pt, pl), (dh, dw))
    wt, wtT = _tap_weights(weight, groups)
    Og = O // groups
    gx = xp.zeros((N, C, H, W), dtype=dtype) if need_input else None
    step = _images_per_step(xp, N, C * H * W + O * Ho * Wo)

    def work(start, stop):
        scratch = _Scratch(xp, dtype)
        gw = xp.zeros((kh, kw, groups, Og, Cg), dtype=dtype) if need_weight else None
        gb = gy[start:stop].sum(axis=(0, 2, 3)) if need_bias else None
        for n0 in range(start, stop, step):
            n1 = min(stop, n0 + step)
            nb = n1 - n0
            gys = gy[n0:n1]
            gxsum = _Sum(xp, gx[n0:n1], scratch, zeroed=True) if need_input else None
            for band in plan.bands:
                Wj = band.width
                if plan.is_full_width(band):
                    gyb = gys.reshape(nb, groups, Og, Ho * Wo)
                else:
                    gyb = scratch.get("grad_band", (nb, O, Ho, Wj))
                    gyb[...] = gys[:, :, :, band.x0:band.x1]
                    gyb = gyb.reshape(nb, groups, Og, Ho * Wj)
                if need_weight:
                    bx = _band_input(xp, x[n0:n1], band, plan, scratch, groups)
                    for i, qi, y0, y1 in band.taps:
                        p = _product(xp, gyb[..., y0 * Wj:y1 * Wj],
                                     bx[..., (y0 + qi) * Wj:(y1 + qi) * Wj].swapaxes(-1, -2),
                                     out=scratch.get("grad_weight", (nb, groups, Og, Cg)))
                        gw[i, band.j] += p.sum(axis=0) if nb > 1 else p[0]
                if need_input:
                    if plan.is_identity(band):  # the band is grad_x itself: add in place
                        gband = gx[n0:n1].reshape(nb, groups, Cg, H * W)[..., :band.rows * W]
                        acc = gxsum
                    else:
                        gband = scratch.get("grad_input_band", (nb, groups, Cg, band.rows * Wj))
                        acc = _Sum(xp, gband, scratch)
                    for i, qi, y0, y1 in band.taps:
                        acc.add_product(wtT[i, band.j], gyb[..., y0 * Wj:y1 * Wj],
                                        gband[..., (y0 + qi) * Wj:(y1 + qi) * Wj])
                    if acc is not gxsum:        # col2im: add the band back where it was read
                        gxsum.add(gband.reshape(nb, C, band.rows, Wj),
                                  plan.band_view(gx[n0:n1], band))
        return gw, gb

    parts = parallel_over_batch(work, N, xp)
    grad_w = grad_b = None
    if need_weight:
        gw = parts[0][0]
        for p in parts[1:]:
            gw += p[0]
        grad_w = xp.ascontiguousarray(gw.transpose(2, 3, 4, 0, 1).reshape(O, Cg, kh, kw))
    if need_bias:
        grad_b = parts[0][1]
        for p in parts[1:]:
            grad_b = grad_b + p[1]
    return gx, grad_w, grad_b
