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

**Matrix products on column bands, not an im2col buffer.** Tap (i, j) on its own is a
1x1 convolution of a shifted (and strided) view of the input: ``y += W_ij @ X_ij`` with
``W_ij = w[:, :, i, j]`` (O, C) and ``X_ij`` (C, Ho*Wo) the pixels that tap reads. The
textbook *im2col* copies all kh*kw views into one (C*kh*kw, Ho*Wo) matrix -- nine
copies of the input for a 3x3 kernel -- and does one product. Here:

* a **band** gathers, once, the input columns that kernel column j reads:
  ``B_j[c, u, v] = x[c, sh*u + ra, sw*(x0 + v) + j*dw - pl]``, shape (C, U, Wb), for
  the output columns x0..x0+Wb-1 (zero where that falls in the padding);
* in a band, one output row down is exactly Wb elements further, so what kernel row i
  needs for output rows y0..y1-1 is a *contiguous slice*, no copy:
  ``B_j.reshape(C, U*Wb)[:, (y0+qi)*Wb : (y1+qi)*Wb]`` with ``qi = (i*dh - pt - ra) / sh``;
* the bands of all kernel columns are stacked in one buffer (kw, C, U, Wb), so that
  slice covers every j at once: kernel row i is **one** product
  ``y[rows] += W_i @ B[:, :, rows+qi]`` with W_i (O, kw*C) -- kh products for a kernel,
  each with a kw-times deeper contraction than a single tap's;
* a stride sh > 1 in rows splits the rows into *row phases* ``ra = (i*dh - pt) mod sh``,
  one band per phase, so the slice stays contiguous.

Kernel columns whose band would be mostly padding (a large dilation on a small map: a
3x3 kernel with dilation 12 on a 16x16 map reads 4 real columns of 16 at its sides) get
a narrow band of their own, and every product covers only the rows where it reads real
input; taps that would read only padding are skipped. A band that *is* the input (one
kernel column, stride 1, all columns) is not copied at all: a 1x1 convolution is a
single matrix product per image.

The backward products:

* grad weight reads the same slices the other way round: ``dW_i = dY[rows] @ B[:, :,
  rows+qi]^T``, summed over the images;
* grad input is a convolution too -- of grad_out with the flipped, channel-transposed
  kernel ("full" padding) -- so it *gathers* with the forward code above, with no
  scatter-add (col2im) at all. A stride sh splits it into sh*sw stride-1 convolutions,
  one per phase of the input's pixels, interleaved: the sub-pixel decomposition.

conv_transpose2d *is* that grad-input product (its input plays grad_out), so it needs
no kernel of its own (see :mod:`minisegnet.functional.conv`).

On the CPU a batch is split over threads, one block of images each, with the BLAS
library held at one thread meanwhile (BLAS and NumPy's copies release the GIL, so the
threads run in parallel); this needs ``threadpoolctl`` and is skipped without it. On the
GPU (CuPy) the same code runs once over the whole batch: every step is a strided copy
or a batched matrix product, which CuPy already does well.
"""
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import backend

__all__ = ["conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "conv_output_size", "ConvPlan",
           "num_threads", "set_num_threads", "parallel_over_batch"]

MAX_PADDING_SHARE = 0.25   # a kernel column joins the stacked band if <= 25% of it is padding


# --------------------------------------------------------------------------- geometry

def conv_output_size(size, kernel, stride=1, pad_before=0, pad_after=0, dilation=1):
    """Output length of a convolution along one axis (PyTorch's formula, floor division):

        out = (size + pad_before + pad_after - dilation*(kernel - 1) - 1) // stride + 1
    """
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def _ceil_div(a, b):
    return -((-a) // b)


class Band:
    """Input columns gathered for some kernel columns and one row phase (module docstring).

    Attributes:
        ra: row phase: band row u holds input row ``sh*u + ra``.
        x0, x1: the output columns the band serves (its width is ``x1 - x0``).
        columns: per kernel column, ``(j, v0, v1, c0)``: band columns v0..v1-1 read input
            columns ``c0, c0 + sw, ...``; the others are padding (zeros).
        taps: per kernel row, ``(i, qi, y0, y1)``: output rows y0..y1-1 read band rows
            y0+qi..y1+qi-1. Widest first (the first product can be written, not added).
        rows: U, the band's row count.
    """

    def __init__(self, ra, x0, x1, columns, taps):
        self.ra, self.x0, self.x1, self.columns = ra, x0, x1, columns
        self.taps = sorted(taps, key=lambda t: t[2] - t[3])
        self.rows = max(qi + y1 for _, qi, _, y1 in taps)
        self.js = [c[0] for c in columns]

    @property
    def width(self):
        return self.x1 - self.x0


class ConvPlan:
    """Which products a convolution geometry needs: its bands and their taps.

    Args:
        in_hw: input (H, W); out_hw: output (Ho, Wo); kernel: (kh, kw);
        stride, padding (top, left), dilation: pairs.
    """

    def __init__(self, in_hw, out_hw, kernel, stride, padding, dilation):
        (H, W), (Ho, Wo) = in_hw, out_hw
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = kernel, stride, padding, dilation
        self.in_hw, self.out_hw, self.kernel, self.stride = (H, W), (Ho, Wo), (kh, kw), (sh, sw)
        rows = []                                   # (i, ra, qi, y0, y1) of kernel rows doing work
        for i in range(kh):
            off = i * dh - pt                       # input row read by output row 0
            y0, y1 = max(0, _ceil_div(-off, sh)), min(Ho, (H - 1 - off) // sh + 1)
            if y0 < y1:
                ra = off % sh
                rows.append((i, ra, (off - ra) // sh, y0, y1))
        stacked, alone = [], []                     # kernel columns (j, x0, x1, first input col)
        for j in range(kw):
            off = j * dw - pl                       # input column read by output column 0
            x0, x1 = max(0, _ceil_div(-off, sw)), min(Wo, (W - 1 - off) // sw + 1)
            if x0 >= x1:
                continue                            # this kernel column only ever sees padding
            mostly_real = x1 - x0 >= (1 - MAX_PADDING_SHARE) * Wo
            (stacked if mostly_real else alone).append((j, x0, x1, sw * x0 + off))
        self.bands = []
        for ra in sorted({r[1] for r in rows}):
            taps = [(i, qi, y0, y1) for i, r, qi, y0, y1 in rows if r == ra]
            if stacked:                             # full output width, padding columns zero
                self.bands.append(Band(ra, 0, Wo, [(j, x0, x1, c) for j, x0, x1, c in stacked], taps))
            for j, x0, x1, c in alone:              # exactly the real columns
                self.bands.append(Band(ra, x0, x1, [(j, 0, x1 - x0, c)], taps))
        self.bands.sort(key=lambda b: -b.width)

    def is_identity(self, band):
        """True when the band is the input itself (rows 0..U-1, all columns): no copy needed."""
        if len(band.columns) != 1 or self.stride != (1, 1):
            return False
        j, v0, v1, c0 = band.columns[0]
        return c0 == 0 and v0 == 0 and v1 == band.width == self.in_hw[1]

    def is_full_width(self, band):
        return band.x0 == 0 and band.x1 == self.out_hw[1]

    def input_view(self, x, band, column):
        """The strided view of ``x`` (..., H, W) that band column ``(j, v0, v1, c0)`` reads."""
        sh, sw = self.stride
        j, v0, v1, c0 = column
        return x[..., band.ra: band.ra + sh * (band.rows - 1) + 1: sh, c0: c0 + sw * (v1 - v0 - 1) + 1: sw]

    def flops(self, n, c_in, c_out, groups):
        """2 x multiply-adds done on real input (padding skipped), for benchmarks and tests."""
        per = sum((v1 - v0) * (y1 - y0) for b in self.bands for _, v0, v1, _ in b.columns
                  for _, _, y0, y1 in b.taps)
        return 2 * n * per * (c_in // groups) * c_out


# --------------------------------------------------------------------------- building blocks

class _Scratch:
    """Reusable work buffers of one thread, by name (grown as needed)."""

    def __init__(self, xp, dtype):
        self.xp, self.dtype, self.buffers = xp, dtype, {}

    def get(self, name, shape):
        size = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.size < size:
            buf = self.buffers[name] = self.xp.empty(size, dtype=self.dtype)
        return buf[:size].reshape(shape)


def _product(xp, a, b, out=None):
    """``a @ b`` over the last two axes, broadcast over the leading ones (into ``out``)."""
    if a.shape[-1] == 1:                    # a one-element contraction is a broadcast multiply
        return xp.multiply(a, b, out=out)
    return xp.matmul(a, b, out=out)


class _Sum:
    """An array that products are added into, written directly by the first one that covers it.

    ``dst`` starts as garbage (``zeroed=False``) or zeros. Adding a product into a view of
    it computes into a scratch buffer and adds, except for the very first product when
    its view covers all of ``dst``: that one is written straight into place. So a 3x3
    convolution costs one direct write and two additions (one per further kernel row).
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
    """The band of ``x`` (nb, C, H, W) as (nb, groups, J*C/groups, U*Wb): a view or a copy.

    The contraction axis is ordered (kernel column, channel) within each group, matching
    :func:`_row_weights`.
    """
    nb, C, H, W = x.shape
    if plan.is_identity(band) and x.flags.c_contiguous:
        return x.reshape(nb, groups, C // groups, H * W)[..., :band.rows * W]
    J, U, Wb = len(band.columns), band.rows, band.width
    buf = scratch.get("band", (nb, groups, J, C // groups, U, Wb))
    x5 = x.reshape(nb, groups, C // groups, H, W)
    for jj, column in enumerate(band.columns):
        _, v0, v1, _ = column
        if v0 > 0:
            buf[:, :, jj, :, :, :v0] = 0
        if v1 < Wb:
            buf[:, :, jj, :, :, v1:] = 0
        buf[:, :, jj, :, :, v0:v1] = plan.input_view(x5, band, column)
    return buf.reshape(nb, groups, J * (C // groups), U * Wb)


def _row_weights(xp, weight, groups, band):
    """W_i of every tap of ``band`` as (taps, g, O/g, J*C/g): the kernel columns of the band
    side by side along the contraction axis, as :func:`_band_input` orders them."""
    O, Cg, kh, kw = weight.shape
    w = weight.reshape(groups, O // groups, Cg, kh, kw).transpose(3, 0, 1, 4, 2)  # (kh, g, O/g, kw, C/g)
    js = band.js
    cols = slice(js[0], js[-1] + 1) if js == list(range(js[0], js[-1] + 1)) else js
    out = xp.empty((len(band.taps), groups, O // groups, len(js), Cg), dtype=weight.dtype)
    for t, tap in enumerate(band.taps):
        out[t] = w[tap[0]][:, :, cols]
    return out.reshape(len(band.taps), groups, O // groups, len(js) * Cg)


# --------------------------------------------------------------------------- threads

_thread_override = None
_default_threads = None
_blas_libs = None                      # threadpoolctl controllers of the BLAS libraries, or []
_pool = {"executor": None, "pid": None, "workers": 0}
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
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"MINISEGNET_NUM_THREADS must be a positive integer, got {env!r}")
        return int(env)
    if _default_threads is None:
        libs = _blas_libraries()
        _default_threads = max([lib.num_threads for lib in libs] or [os.cpu_count() or 1])
    return _default_threads


def set_num_threads(n):
    """Use ``n`` threads for CPU convolutions (``None``: back to the default)."""
    global _thread_override
    _thread_override = None if n is None else max(1, int(n))


def _executor(workers):
    """The pool of extra worker threads (remade after a fork: a child has no threads)."""
    if _pool["executor"] is None or _pool["pid"] != os.getpid() or _pool["workers"] < workers:
        if _pool["executor"] is not None and _pool["pid"] == os.getpid():
            _pool["executor"].shutdown(wait=False)
        _pool.update(executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minisegnet-conv"),
                     pid=os.getpid(), workers=workers)
    return _pool["executor"]


def parallel_over_batch(fn, n_items, xp=np):
    """Run ``fn(start, stop)`` over contiguous blocks of ``range(n_items)``, one per thread.

    Returns the list of results, in order. The calling thread takes the first block.
    Runs a single ``fn(0, n_items)`` on the GPU, with one thread or item, without
    threadpoolctl, or when already inside a parallel section. While the threads run,
    BLAS is held at one thread each so that the cores are not oversubscribed (each
    thread's matrix products are big enough on their own).
    """
    threads = min(num_threads(), n_items)
    libs = _blas_libraries() if xp is np and threads > 1 else []
    if not libs or not _pool_lock.acquire(blocking=False):
        return [fn(0, n_items)]
    try:
        bounds = [n_items * t // threads for t in range(threads + 1)]
        previous = [lib.num_threads for lib in libs]
        for lib in libs:
            lib.set_num_threads(1)
        try:
            futures = [_executor(threads - 1).submit(fn, a, b)
                       for a, b in zip(bounds[1:-1], bounds[2:])]
            first = fn(bounds[0], bounds[1])
            return [first] + [f.result() for f in futures]
        finally:
            for lib, n in zip(libs, previous):
                lib.set_num_threads(n)
    finally:
        _pool_lock.release()


def _images_per_step(xp, n, image_elements):
    """Images a thread handles at once: all on the GPU; on the CPU one, unless images are
    tiny (then Python's per-step overhead, which holds the GIL, would dominate)."""
    if xp is not np:
        return n
    return max(1, min(n, (1 << 15) // max(1, image_elements)))


# --------------------------------------------------------------------------- the kernels

def _pairs(stride, padding, dilation):
    pair = lambda v: (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))
    return pair(stride), pair(padding), pair(dilation)


class _Forward:
    """One convolution geometry made ready to run: its plan and per-band weights, so that
    the per-image work (:meth:`run`) can be called for any block of images, from any thread.
    """

    def __init__(self, xp, x_shape, weight, bias, stride, padding, dilation, groups, out_hw):
        N, C, H, W = x_shape
        O, Cg, kh, kw = weight.shape
        self.xp, self.groups, self.out_shape = xp, groups, (O,) + tuple(out_hw)
        self.plan = ConvPlan((H, W), out_hw, (kh, kw), stride, padding, dilation)
        self.weights = [_row_weights(xp, weight, groups, band) for band in self.plan.bands]
        self.bias = None if bias is None else bias.reshape(1, O, 1, 1)
        self.step = _images_per_step(xp, N, C * H * W + O * out_hw[0] * out_hw[1])

    def run(self, x, y, start, stop, scratch):
        """``y[start:stop] = conv2d(x[start:stop]) + bias``; y may have any strides."""
        xp, plan, groups = self.xp, self.plan, self.groups
        O, Ho, Wo = self.out_shape
        Og = O // groups
        for n0 in range(start, stop, self.step):
            n1 = min(stop, n0 + self.step)
            nb, ys = n1 - n0, y[n0:n1]
            staged = not ys.flags.c_contiguous  # e.g. every other pixel: compute, then copy
            if staged:
                ys = scratch.get("output", (nb, O, Ho, Wo))
            ysum = _Sum(xp, ys, scratch)
            for band, w in zip(plan.bands, self.weights):
                bx = _band_input(xp, x[n0:n1], band, plan, scratch, groups)
                Wb = band.width
                if plan.is_full_width(band):
                    out, acc = ys.reshape(nb, groups, Og, Ho * Wo), ysum   # add in place
                else:
                    out = scratch.get("band_out", (nb, groups, Og, Ho * Wb))
                    acc = _Sum(xp, out, scratch)
                for t, (i, qi, y0, y1) in enumerate(band.taps):
                    acc.add_product(w[t], bx[..., (y0 + qi) * Wb:(y1 + qi) * Wb], out[..., y0 * Wb:y1 * Wb])
                if acc is not ysum:
                    ysum.add(out.reshape(nb, O, Ho, Wb), ys[..., band.x0:band.x1])
            ysum.finish()
            if self.bias is not None:
                ys += self.bias
            if staged:
                y[n0:n1] = ys


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
    stride, padding, dilation = _pairs(stride, padding, dilation)
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    if out_hw is None:
        out_hw = tuple(conv_output_size(n, k, s, p, p, d) for n, k, s, p, d in
                       zip((H, W), (kh, kw), stride, padding, dilation))
    conv = _Forward(xp, x.shape, weight, bias, stride, padding, dilation, groups, out_hw)
    y = xp.empty((N, O) + tuple(out_hw), dtype=x.dtype)
    parallel_over_batch(lambda a, b: conv.run(x, y, a, b, _Scratch(xp, x.dtype)), N, xp)
    return y


def conv2d_grad_input(grad_out, weight, input_hw, stride=1, padding=0, dilation=1, groups=1):
    """dL/dx of ``y = conv2d(x, weight)`` given ``grad_out`` = dL/dy; also conv_transpose2d.

    Input pixel r received from output row yo through kernel row i when
    ``r = sh*yo + i*dh - pt``, so its gradient gathers ``W_i^T dY[yo]`` over those
    (i, yo). With stride 1 that is a convolution of grad_out with the *flipped*,
    channel-transposed kernel and padding ``dh*(kh-1) - pt`` ("full" padding): computed
    by :func:`conv2d_forward` itself. With stride sh, the input rows of one phase
    ``r = sh*u + ra`` are reached only by the kernel rows with ``(i*dh - pt) mod sh == ra``,
    which again form a regular (dilated) kernel: grad_x is sh*sw stride-1 convolutions,
    one per phase, interleaved (the *sub-pixel* form of a transposed convolution).

    Args:
        grad_out: (N, O, Ho, Wo); weight: (O, C/groups, kh, kw); input_hw: (H, W).
        stride, padding ``(top, left)``, dilation, groups: those of the forward conv2d.

    Returns grad_x (N, C, H, W).
    """
    xp = backend.array_module(grad_out, weight)
    (sh, sw), (pt, pl), (dh, dw) = _pairs(stride, padding, dilation)
    N, O, Ho, Wo = grad_out.shape
    _, Cg, kh, kw = weight.shape
    H, W = input_hw
    # the same numbers read as a conv2d weight from O channels to C = Cg*groups channels
    w_t = weight.reshape(groups, O // groups, Cg, kh, kw).transpose(0, 2, 1, 3, 4)
    w_t = w_t.reshape(groups * Cg, O // groups, kh, kw)

    def phase(r, s, k, d, p):
        """Kernel taps (in flipped order), dilation and padding of phase r along one axis."""
        taps = [i for i in range(k) if (i * d - p) % s == r]
        dil = (taps[1] - taps[0]) * d // s if len(taps) > 1 else 1
        return taps[::-1], dil, ((taps[-1] * d - p - r) // s if taps else 0)

    gx = xp.empty((N, groups * Cg, H, W), dtype=grad_out.dtype)
    phases = []                                     # (view of gx, its convolution or None)
    for ra in range(min(sh, H)):
        rows, dil_r, pad_r = phase(ra, sh, kh, dh, pt)
        for rb in range(min(sw, W)):
            cols, dil_c, pad_c = phase(rb, sw, kw, dw, pl)
            part = gx[:, :, ra::sh, rb::sw]
            conv = None
            if rows and cols:
                conv = _Forward(xp, grad_out.shape, w_t[:, :, rows][:, :, :, cols], None, (1, 1),
                                (pad_r, pad_c), (dil_r, dil_c), groups, part.shape[2:])
            phases.append((part, conv))

    def work(start, stop):                          # every phase of a block of images
        scratch = _Scratch(xp, gx.dtype)
        for part, conv in phases:
            if conv is None:
                part[start:stop] = 0                # no kernel tap ever reads these pixels
            else:
                conv.run(grad_out, part, start, stop, scratch)

    parallel_over_batch(work, N, xp)
    return gx


def conv2d_grad_weight(grad_out, x, weight_shape, stride=1, padding=0, dilation=1, groups=1,
                       need_bias=False):
    """dL/dweight (and dL/dbias) of ``y = conv2d(x, weight) + bias`` given ``grad_out``.

    For each band and kernel row i: ``dW_i = dY[rows] @ B[:, :, rows+qi]^T`` (O/g, J*C/g)
    per group (computed as its transpose), summed over the images.

    Threads split the images and add up their partial sums at the end -- unless the
    weight is large next to the images (deep layers on small maps: 256x256x3x3 weights
    for 16x16 maps), where a partial sum per thread would cost more memory than the
    activations; then threads split the output channels instead (each sees every image
    and writes its own rows of the gradient).

    Args:
        grad_out: (N, O, Ho, Wo); x: (N, C, H, W); weight_shape: (O, C/groups, kh, kw).
        stride, padding ``(top, left)``, dilation, groups: those of the forward conv2d.

    Returns ``(grad_weight, grad_bias)``; grad_bias (O,) is None unless ``need_bias``.
    """
    xp = backend.array_module(grad_out, x)
    (sh, sw), (pt, pl), (dh, dw) = _pairs(stride, padding, dilation)
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight_shape
    Ho, Wo = grad_out.shape[2:]
    Og = O // groups
    gy = xp.ascontiguousarray(grad_out)
    plan = ConvPlan((H, W), (Ho, Wo), (kh, kw), (sh, sw), (pt, pl), (dh, dw))
    step = _images_per_step(xp, N, C * H * W + O * Ho * Wo)
    threads = num_threads() if xp is np else 1
    by_channels = threads > 1 and O * Cg * kh * kw * threads >= N * C * H * W and Og >= 8 * threads
    tasks = [(band, tap, slice(0, Og)) for band in plan.bands for tap in band.taps]

    def work(start, stop, tasks, gw):
        """Add the gradient of images start..stop-1 and ``tasks`` (band, tap, block of
        output channels) into gw, kept transposed as (kh, g, kw, C/g, O/g)."""
        scratch = _Scratch(xp, gy.dtype)
        for n0 in range(start, stop, step):
            n1 = min(stop, n0 + step)
            nb, gys = n1 - n0, gy[n0:n1]
            for band in plan.bands:
                taps = [(tap, block) for b, tap, block in tasks if b is band]
                if not taps:
                    continue
                Wb, J = band.width, len(band.columns)
                if plan.is_full_width(band):
                    gyb = gys.reshape(nb, groups, Og, Ho * Wo)
                else:
                    gyb = scratch.get("grad_band", (nb, O, Ho, Wb))
                    gyb[...] = gys[..., band.x0:band.x1]
                    gyb = gyb.reshape(nb, groups, Og, Ho * Wb)
                bx = _band_input(xp, x[n0:n1], band, plan, scratch, groups)
                stacked = band.js == list(range(band.js[0], band.js[0] + J))
                for (i, qi, y0, y1), block in taps:
                    if stacked:                 # the band's kernel columns, side by side
                        dst = gw[i, :, band.js[0]:band.js[0] + J].reshape(groups, J * Cg, Og)[..., block]
                    for n in range(nb):
                        # dW_i^T = B_rows @ dY_rows^T: BLAS runs it faster than dY @ B^T
                        p = _product(xp, bx[n, ..., (y0 + qi) * Wb:(y1 + qi) * Wb],
                                     gyb[n, :, block, y0 * Wb:y1 * Wb].swapaxes(-1, -2),
                                     out=scratch.get("grad_weight", (groups, J * Cg, block.stop - block.start)))
                        if stacked:
                            dst += p
                        else:
                            for jj, j in enumerate(band.js):
                                gw[i, :, j, :, block] += p[:, jj * Cg:(jj + 1) * Cg]
        return gw

    new = lambda: xp.zeros((kh, groups, kw, Cg, Og), dtype=gy.dtype)
    if by_channels:                  # thread t: its share of the (tap, output channel) pairs
        gw, bounds = new(), [len(tasks) * Og * t // threads for t in range(threads + 1)]
        shares = [[(band, tap, slice(max(lo, k * Og) - k * Og, min(hi, (k + 1) * Og) - k * Og))
                   for k, (band, tap, _) in enumerate(tasks) if max(lo, k * Og) < min(hi, (k + 1) * Og)]
                  for lo, hi in zip(bounds[:-1], bounds[1:])]
        parallel_over_batch(lambda a, b: [work(0, N, share, gw) for share in shares[a:b]], threads, xp)
    else:
        parts = parallel_over_batch(lambda a, b: work(a, b, tasks, new()), N, xp)
        gw = parts[0]
        for t in range(1, len(parts)):
            gw += parts[t]
            parts[t] = None                      # free each partial sum once added
    grad_b = gy.sum(axis=(0, 2, 3)) if need_bias else None
    return xp.ascontiguousarray(gw.transpose(1, 4, 3, 0, 2).reshape(O, Cg, kh, kw)), grad_b
