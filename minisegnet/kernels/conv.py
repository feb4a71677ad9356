"""2-D convolution on raw arrays: the forward product and the two backward products.

    y[n, o, yo, xo] = sum_{c', i, j} w[o, c', i, j] * x[n, c0 + c', sh*yo + i*dh - pt, sw*xo + j*dw - pl]

(c0 the first input channel of o's group; zeros outside the image). Each kernel row i
is one matrix product ``y[rows] += W_i @ B[:, :, rows+qi]`` on a *band* of gathered
input columns -- :mod:`minisegnet.kernels.conv_plan` explains the bands and decides
which products a geometry needs; this module runs them. The textbook version (pad, a
strided view, one product) is :mod:`minisegnet.kernels.conv_reference`: the tests hold
this one to it.

The backward products:

* grad weight reads the same slices the other way round: ``dW_i = dY[rows] @ B[:, :,
  rows+qi]^T``, summed over the images;
* grad input is a convolution too -- of grad_out with the flipped, channel-transposed
  kernel ("full" padding) -- so it *gathers* with the forward code above, with no
  scatter-add (col2im) at all. A stride sh splits it into sh*sw stride-1 convolutions,
  one per phase of the input's pixels, interleaved: the sub-pixel decomposition.

conv_transpose2d *is* that grad-input product (its input plays grad_out), so it needs
no kernel of its own (see :mod:`minisegnet.functional.conv`).

On the CPU a batch is split over threads, one block of images each
(:func:`minisegnet.kernels.threads.parallel_for`, with BLAS held at one thread
meanwhile: BLAS and NumPy's copies release the GIL, so the threads run in parallel).
Small convolutions stay on one thread, and mid-size ones run their two backward
products side by side instead (:func:`backward_products`): handing work to a thread
costs tens of microseconds, which only large enough pieces of work pay back.
On the GPU (CuPy) the same code runs once over the whole batch: every step is a
strided copy or a batched matrix product, which CuPy already does well.
"""
import math

import numpy as np

from .. import backend
from . import depthwise
from .conv_plan import ConvPlan, band_input, conv_output_size, pairs, plan_for, row_weights
from .relu import channel_sum
from .threads import num_threads, parallel_for, set_num_threads, side_by_side

__all__ = ["conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_backward",
           "conv_transpose2d_backward", "backward_products",
           "conv_output_size", "ConvPlan", "num_threads", "set_num_threads", "parallel_over_batch"]

parallel_over_batch = parallel_for      # the name earlier code and lectures use


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


#: OpenBLAS (0.3.x built for AVX-512, as NumPy's wheels are on such CPUs) sends a product
#: of at most 1e6 multiply-adds to a kernel for small matrices, which runs *thin* products
#: -- a 16-row weight times a long band, as in a 7x7 stem with 3 input channels --
#: about twice as fast as its general one (measured here: 16x21 @ 21x4096 42 GFLOP/s,
#: in two halves 85). So a thin product above that size is done in pieces below it: along
#: its long output axis, or along a long contraction (the pieces then added up).
SMALL_PRODUCT_MACS = 1_000_000
#: A product is *thin* when the two axes that are not split have at most this many entries.
THIN_PRODUCT = 3072
#: Pieces are never shorter than this (a short piece loses more to the call than it gains).
MIN_PIECE = 256


def _product(xp, a, b, out=None):
    """``a @ b`` over the last two axes, broadcast over the leading ones (into ``out``);
    thin products in pieces (see :data:`SMALL_PRODUCT_MACS`)."""
    if a.shape[-1] == 1:                    # a one-element contraction is a broadcast multiply
        return xp.multiply(a, b, out=out)
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if xp is not np or m * k * n <= SMALL_PRODUCT_MACS:
        return xp.matmul(a, b, out=out)
    if m * k <= THIN_PRODUCT and SMALL_PRODUCT_MACS // (m * k) >= MIN_PIECE:   # pieces of columns
        step = SMALL_PRODUCT_MACS // (m * k)
        if out is None:
            out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (m, n), dtype=np.result_type(a, b))
        for p in range(0, n, step):
            np.matmul(a, b[..., p:p + step], out=out[..., p:p + step])
        return out
    if m * n <= THIN_PRODUCT and SMALL_PRODUCT_MACS // (m * n) >= MIN_PIECE:   # pieces of the contraction
        step = SMALL_PRODUCT_MACS // (m * n)
        out = np.matmul(a[..., :step], b[..., :step, :], out=out)
        for p in range(step, k, step):
            out += np.matmul(a[..., p:p + step], b[..., p:p + step, :])
        return out
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


#: Convolutions of fewer multiply-adds than this run on one thread: handing half of the
#: work to another thread costs ~0.1 ms (waking it, and the GIL passed back and forth
#: between two threads that each make many small NumPy calls), more than it saves.
PARALLEL_MIN_MACS = 1 << 24


def _threads(xp, macs):
    """Threads for a convolution of ``macs`` multiply-adds (None: all of them)."""
    return 1 if xp is np and macs < PARALLEL_MIN_MACS else None


#: A convolution of PARALLEL_MIN_MACS up to this many multiply-adds runs its two backward
#: products side by side, one per thread, instead of each product split over the images:
#: one hand-off instead of two, and every NumPy call still covers the whole batch, so the
#: threads wait less on each other for the GIL. Bigger ones split well over the images.
SIDE_BY_SIDE_MAX_MACS = 1 << 27


def backward_products(xp, macs, grad_input, grad_weight):
    """Run the two backward products of one convolution of ``macs`` multiply-adds.

    ``grad_input`` and ``grad_weight`` are zero-argument callables (either may be None,
    when that gradient is not needed); returns their results ``(gx, gw)`` (None for a
    missing one). The two are independent -- both read only ``grad_out``, the input and
    the weight -- so when both are needed they may run at the same time (see
    :data:`SIDE_BY_SIDE_MAX_MACS`); otherwise each splits its own work over the threads.
    """
    if (grad_input is not None and grad_weight is not None and xp is np and num_threads() >= 2
            and PARALLEL_MIN_MACS <= macs <= SIDE_BY_SIDE_MAX_MACS):
        gx, gw = side_by_side([grad_input, grad_weight], xp)
        return gx, gw
    return (None if grad_input is None else grad_input(),
            None if grad_weight is None else grad_weight())


def conv2d_backward(grad_out, x, weight, stride, padding, dilation, groups,
                    need_x=True, need_w=True, need_b=False):
    """``(grad_x, grad_weight, grad_bias)`` of ``y = conv2d(x, weight) + bias`` from
    ``grad_out`` (None for each one not needed): the direct depthwise kernel where it
    pays (:func:`minisegnet.kernels.depthwise.worth_it`), else the two products of
    :func:`conv2d_grad_input` and :func:`conv2d_grad_weight` (see :func:`backward_products`)."""
    xp = backend.array_module(grad_out, weight)
    if depthwise.worth_it(xp, x.shape, weight.shape, groups, grad_out.shape[2:]) and (need_x or need_w):
        (sh, sw), (pt, pl), (dh, dw) = pairs(stride, padding, dilation)
        gx, gw = depthwise.depthwise_backward(grad_out, x, weight, (sh, sw), (pt, pl), (dh, dw),
                                              need_x, need_w)
        return gx, gw, channel_sum(grad_out, (0, 2, 3)) if need_b else None
    macs = grad_out.shape[0] * grad_out.shape[2] * grad_out.shape[3] * weight.size
    args = (stride, padding, dilation, groups)
    gx, grads = backward_products(
        xp, macs,
        (lambda: conv2d_grad_input(grad_out, weight, x.shape[2:], *args)) if need_x else None,
        (lambda: conv2d_grad_weight(grad_out, x, weight.shape, *args, need_bias=need_b))
        if need_w else None)
    gw, gb = grads if need_w else (None, None)
    if need_b and not need_w:
        gb = channel_sum(grad_out, (0, 2, 3))
    return gx, gw, gb


def conv_transpose2d_backward(grad_out, x, weight, stride, padding, dilation, groups,
                              out_hw, need_x=True, need_w=True, need_b=False):
    """``(grad_x, grad_weight, grad_bias)`` of ``y = conv_transpose2d(x, weight) + bias``.

    conv_transpose2d is conv2d's grad-input product, so its gradients are conv2d's other
    two products: grad x = conv2d forward of grad_out, grad weight = conv2d's grad-weight
    product with x and grad_out in swapped roles (see :func:`backward_products`).
    ``out_hw`` is x's (H, W): the size grad x must have.
    """
    xp = backend.array_module(grad_out, weight)
    macs = x.shape[0] * x.shape[2] * x.shape[3] * weight.size
    args = (stride, padding, dilation, groups)
    gx, gw = backward_products(
        xp, macs,
        (lambda: conv2d_forward(grad_out, weight, None, *args, out_hw=out_hw)) if need_x else None,
        (lambda: conv2d_grad_weight(x, grad_out, weight.shape, *args)[0]) if need_w else None)
    return gx, gw, channel_sum(grad_out, (0, 2, 3)) if need_b else None


#: Grad weight puts the images side by side along its products' contraction axis when
#: the output has at most this many pixels per image. Each tap's product then sums over
#: the images by itself, instead of one short product per image (a contraction of at
#: most 64 on an 8x8 map, which BLAS runs slowly) writing a weight-sized array each to be
#: summed afterwards. Measured on the default ``minisegnet train`` step (64x64 input,
#: 8x8 maps at output stride 8), two interleaved runs: 1 thread 43.8-44.5 -> 40.9-42.0
#: ms, 2 threads 38.5-43.1 -> 37.8-38.8 ms; at 16x16 maps and beyond no clear gain.
FOLD_MAX_PIXELS = 64


#: A thread works on as many images at once as fit in this many elements (input + output,
#: ~2 MB of float32): one NumPy call then covers several images (a stacked matmul loops
#: over them in C, with the GIL released), so small feature maps cost few Python calls,
#: while a large map goes one image at a time, so that its bands stay near the cache.
#: 2**21 before: 8x64x64x64 3x3 forward + backward 10-14% faster at 2**19 (1 and 2
#: threads), a 7x7 stem on 256x256 images 23-39%; the 16x16 maps of the 128x128 training
#: steps still go 4-8 images at a time, and their steps did not change.
IMAGE_BLOCK_ELEMENTS = 1 << 19


def _images_per_step(xp, n, image_elements):
    """Images a thread handles at once: all on the GPU; on the CPU as many as fit in
    :data:`IMAGE_BLOCK_ELEMENTS` (at least one)."""
    if xp is not np:
        return n
    return max(1, min(n, IMAGE_BLOCK_ELEMENTS // max(1, image_elements)))



# --------------------------------------------------------------------------- the kernels

class _Forward:
    """One convolution geometry made ready to run: its plan and per-band weights, so that
    the per-image work (:meth:`run`) can be called for any block of images, from any thread.
    """

    def __init__(self, xp, x_shape, weight, bias, stride, padding, dilation, groups, out_hw):
        N, C, H, W = x_shape
        O, Cg, kh, kw = weight.shape
        self.xp, self.groups, self.out_shape = xp, groups, (O,) + tuple(out_hw)
        self.plan = plan_for((H, W), tuple(out_hw), (kh, kw), tuple(stride), tuple(padding),
                             tuple(dilation))
        self.weights = [row_weights(xp, weight, groups, band) for band in self.plan.bands]
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
                bx = band_input(xp, x[n0:n1], band, plan, scratch, groups)
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
    stride, padding, dilation = pairs(stride, padding, dilation)
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    if out_hw is None:
        out_hw = tuple(conv_output_size(n, k, s, p, p, d) for n, k, s, p, d in
                       zip((H, W), (kh, kw), stride, padding, dilation))
    if depthwise.worth_it(xp, x.shape, weight.shape, groups, out_hw):
        return depthwise.depthwise_forward(x, weight, bias, stride, padding, dilation, out_hw)
    conv = _Forward(xp, x.shape, weight, bias, stride, padding, dilation, groups, out_hw)
    y = xp.empty((N, O) + tuple(out_hw), dtype=x.dtype)
    parallel_for(lambda a, b: conv.run(x, y, a, b, _Scratch(xp, x.dtype)), N, xp,
                 threads=_threads(xp, N * O * Cg * kh * kw * out_hw[0] * out_hw[1]))
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
    (sh, sw), (pt, pl), (dh, dw) = pairs(stride, padding, dilation)
    N, O, Ho, Wo = grad_out.shape
    _, Cg, kh, kw = weight.shape
    H, W = input_hw
    # the same numbers read as a conv2d weight from O channels to C = Cg*groups channels
    # (a view when groups == 1)
    w_t = weight.reshape(groups, O // groups, Cg, kh, kw).transpose(0, 2, 1, 3, 4)
    w_t = w_t.reshape(groups * Cg, O // groups, kh, kw)

    def phase(r, s, k, d, p):
        """Kernel taps (flipped: a slice with a negative step, so that picking them is a
        view), dilation and padding of phase r along one axis."""
        taps = [i for i in range(k) if (i * d - p) % s == r]
        if not taps:
            return None, 1, 0
        step = taps[1] - taps[0] if len(taps) > 1 else 1     # the taps are evenly spaced
        flipped = slice(taps[-1], taps[0] - 1 if taps[0] > 0 else None, -step)
        return flipped, step * d // s if len(taps) > 1 else 1, (taps[-1] * d - p - r) // s

    gx = xp.empty((N, groups * Cg, H, W), dtype=grad_out.dtype)
    phases = []                                     # (view of gx, its convolution or None)
    for ra in range(min(sh, H)):
        rows, dil_r, pad_r = phase(ra, sh, kh, dh, pt)
        for rb in range(min(sw, W)):
            cols, dil_c, pad_c = phase(rb, sw, kw, dw, pl)
            part = gx[:, :, ra::sh, rb::sw]
            conv = None
            if rows is not None and cols is not None:
                conv = _Forward(xp, grad_out.shape, w_t[:, :, rows, cols], None, (1, 1),
                                (pad_r, pad_c), (dil_r, dil_c), groups, part.shape[2:])
            phases.append((part, conv))

    def work(start, stop):                          # every phase of a block of images
        scratch = _Scratch(xp, gx.dtype)
        for part, conv in phases:
            if conv is None:
                part[start:stop] = 0                # no kernel tap ever reads these pixels
            else:
                conv.run(grad_out, part, start, stop, scratch)

    parallel_for(work, N, xp, threads=_threads(xp, N * O * Cg * kh * kw * Ho * Wo))
    return gx


def conv2d_grad_weight(grad_out, x, weight_shape, stride=1, padding=0, dilation=1, groups=1,
                       need_bias=False):
    """dL/dweight (and dL/dbias) of ``y = conv2d(x, weight) + bias`` given ``grad_out``.

    For each band and kernel row i: ``dW_i = dY[rows] @ B[:, :, rows+qi]^T`` (O/g, J*C/g)
    per group (computed as its transpose), summed over the images.

    On small maps (:data:`FOLD_MAX_PIXELS`) the images lie side by side along the
    contraction instead, and one product per tap sums over them. Threads split the images
    and add up their partial sums at the end (one weight-sized array per thread);
    splitting the output channels instead was measured slower: every thread then gathers
    the same bands of every image.

    Args:
        grad_out: (N, O, Ho, Wo); x: (N, C, H, W); weight_shape: (O, C/groups, kh, kw).
        stride, padding ``(top, left)``, dilation, groups: those of the forward conv2d.

    Returns ``(grad_weight, grad_bias)``; grad_bias (O,) is None unless ``need_bias``.
    """
    xp = backend.array_module(grad_out, x)
    (sh, sw), (pt, pl), (dh, dw) = pairs(stride, padding, dilation)
    N, C, H, W = x.shape
    O, Cg, kh, kw = weight_shape
    Ho, Wo = grad_out.shape[2:]
    Og = O // groups
    gy = xp.ascontiguousarray(grad_out)
    plan = plan_for((H, W), (Ho, Wo), (kh, kw), (sh, sw), (pt, pl), (dh, dw))
    step = _images_per_step(xp, N, C * H * W + O * Ho * Wo)

    fold = Ho * Wo <= FOLD_MAX_PIXELS           # the images inside each band row

    def work(start, stop, gw):
        """Add the gradient of images start..stop-1 into gw, kept transposed as
        (kh, g, kw, C/g, O/g)."""
        scratch = _Scratch(xp, gy.dtype)
        for n0 in range(start, stop, step):
            n1 = min(stop, n0 + step)
            nb = n1 - n0
            for band in plan.bands:
                Wb, J = band.width, len(band.columns)
                bx = band_input(xp, x[n0:n1], band, plan, scratch, groups, images_inside=fold)
                if fold:                        # (g, O/g, Ho*nb*Wb), as bx: row by row
                    gyb = scratch.get("grad_band", (O, Ho, nb, Wb))
                    gyb[...] = gy[n0:n1, :, :, band.x0:band.x1].transpose(1, 2, 0, 3)
                    gyb, row = gyb.reshape(groups, Og, Ho * nb * Wb), nb * Wb
                elif plan.is_full_width(band):  # (nb, g, O/g, Ho*Wo): a view
                    gyb, row = gy[n0:n1].reshape(nb, groups, Og, Ho * Wo), Wb
                else:
                    gyb = scratch.get("grad_band", (nb, O, Ho, Wb))
                    gyb[...] = gy[n0:n1, :, :, band.x0:band.x1]
                    gyb, row = gyb.reshape(nb, groups, Og, Ho * Wb), Wb
                stacked = band.js == list(range(band.js[0], band.js[0] + J))
                for i, qi, y0, y1 in band.taps:
                    # dW_i^T = B_rows @ dY_rows^T (BLAS runs it faster than dY @ B^T): one
                    # product per image in one call, then summed over the images -- or,
                    # folded, one product whose contraction runs over every image
                    p = _product(xp, bx[..., (y0 + qi) * row:(y1 + qi) * row],
                                 gyb[..., y0 * row:y1 * row].swapaxes(-1, -2),
                                 out=scratch.get("grad_weight", bx.shape[:-1] + (Og,)))
                    if not fold:
                        p = p[0] if nb == 1 else p.sum(axis=0)
                    p = p.reshape(groups, J, Cg, Og)
                    if stacked:                 # the band's kernel columns, side by side
                        gw[i, :, band.js[0]:band.js[0] + J] += p
                    else:
                        for jj, j in enumerate(band.js):
                            gw[i, :, j] += p[:, jj]
        return gw

    parts = parallel_for(lambda a, b: work(a, b, xp.zeros((kh, groups, kw, Cg, Og), dtype=gy.dtype)),
                         N, xp, threads=_threads(xp, N * O * Cg * kh * kw * Ho * Wo))
    gw = parts[0]
    for t in range(1, len(parts)):
        gw += parts[t]
        parts[t] = None                          # free each partial sum once added
    grad_b = channel_sum(gy, (0, 2, 3)) if need_bias else None
    return xp.ascontiguousarray(gw.transpose(1, 4, 3, 0, 2).reshape(O, Cg, kh, kw)), grad_b