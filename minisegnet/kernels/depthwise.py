"""Depthwise convolution (``groups == C_in == C_out``) computed directly, tap by tap.

In a depthwise convolution every channel has its own small kernel and nothing mixes
the channels:

    y[n, c, yo, xo] = sum_{i, j} w[c, 0, i, j] * x[n, c, sh*yo + i*dh - pt, sw*xo + j*dw - pl]

Each output pixel is a sum of only kh*kw products, so the matrix products that make a
dense convolution fast (a contraction over kh*kw*C) have nothing to contract here: as
grouped products they become thousands of tiny ones. This kernel instead makes one
pass per tap over the whole image, multiply and add, the way one would write it by hand:

    y += w[:, i, j] * (x shifted by (i*dh, j*dw))          for every tap (i, j)

**The flat padded layout.** Put each padded image row after row in one flat line of
``Wq`` values per row, and the images of one channel one after another on the same
line. A shift by (i, j) is then a shift of the whole line by ``i*Wq + j``: every tap
reads one contiguous slice of a channel's line and multiplies it by one number, the
fastest loop NumPy has. The output is computed in the same layout and its real pixels
picked out at the end (the others read across a row's or an image's end; they are
dropped).

**Strides.** With stride s, output pixel (yo, xo) reads padded pixel
(s*yo + i*dh, s*xo + j*dw). Split the padded image into its s x s *phases*
(``phase[a, b] = padded[a::s, b::s]``), each on a line of its own: the tap then reads
phase ``((i*dh) % s, (j*dw) % s)`` at (yo + (i*dh)//s, xo + (j*dw)//s), a plain shift
again.

**The backward pass** uses the same slices the other way round:

    grad x (scatter):  line slice of phase[t]  += w[c, t] * dy     (then un-pad)
    grad w (gather):   dw[c, t] = dy . (line slice of phase[t])    (one dot product)

with dy laid out like the output and zeros in its dropped places.

The channels are independent, so the work goes in blocks of channels (all images of
each, ~2 MB: few NumPy calls, each over a long line) shared out among the threads
(:func:`minisegnet.kernels.threads.parallel_for`). Where it pays: on maps of 32x32 and
more.

**Small maps, channels last.** On an 8x8 or 4x4 map the padding is a large share of the
flat lines (36 padded pixels hold a 4x4 image), but there are many channels (384-1024 in
the real-time and transformer models). There the images are turned channels-last,
(N, H, W, C), and each tap is one NumPy call over the rectangle of output pixels whose
source pixel lies inside the image:

    y[:, oy, ox, :] += w[:, t] * x[:, iy, ix, :]      (oy, ox, iy, ix: slices, strided by s)

No padding is stored, and every inner loop runs along the C contiguous channels. The
maps in between keep the grouped products of :mod:`minisegnet.kernels.conv` -- see
:func:`worth_it`, :func:`layout` and ``benchmarks/README.md``.
"""
import numpy as np

from .threads import num_threads, parallel_for

__all__ = ["depthwise_forward", "depthwise_backward", "worth_it"]

#: Values in one block's buffer (2 MB of float32). Fewer, larger blocks mean fewer NumPy
#: calls; measured on 8x64x64x64 and 8x96x32x32, 2**19 was best from 2**16 to 2**20.
BLOCK_ELEMENTS = 1 << 19

#: Output maps of fewer pixels than this keep the grouped products: there the padding
#: around each small image is a large share of the flat lines, and the lines are short.
#: Measured forward + backward, 1 and 2 threads: direct 1.2-1.7x faster from 32x32 up,
#: even or slower at 16x16 and below.
MIN_PIXELS = 32 * 32


#: Input and output maps of at most this many pixels, with at least
#: :data:`SMALL_MAP_CHANNELS` channels, run channels-last (:func:`layout`). Measured
#: forward + backward against the grouped products, batch 8, 1 / 2 threads: 4x4 maps of
#: 256-1024 channels 1.1-4.2 -> 0.4-1.4 ms, 8x8 of 384-640 2.6-4.7 -> 2.3-3.9 ms, 8x8 to
#: 4x4 at stride 2 2.2-2.3 -> 1.0 ms, 8x8 of 64-128 even; 16x16 of 128 2.2 -> 4.0 ms
#: (slower: the per-pixel inner loops), 16x16 to 8x8 at stride 2 4.5-6.0 -> 4.1-5.5 ms.
SMALL_MAP_PIXELS = 64
SMALL_MAP_CHANNELS = 128


def layout(in_hw, out_hw, channels):
    """Which direct kernel suits a depthwise convolution: ``'flat'`` (padded lines, large
    maps), ``'channels_last'`` (small maps of many channels) or None (neither beats the
    grouped products)."""
    if out_hw[0] * out_hw[1] >= MIN_PIXELS:
        return "flat"
    if max(in_hw[0] * in_hw[1], out_hw[0] * out_hw[1]) <= SMALL_MAP_PIXELS and channels >= SMALL_MAP_CHANNELS:
        return "channels_last"
    return None


def worth_it(xp, x_shape, weight_shape, groups, out_hw):
    """Whether a conv2d of these shapes is depthwise (one output channel per input
    channel) and of a size where one of this module's kernels beats the grouped products
    (CPU only: on the GPU one batched product over all channels is already fast)."""
    C, O, Cg = x_shape[1], weight_shape[0], weight_shape[1]
    return (xp is np and groups == C == O and Cg == 1 and C > 1
            and layout(x_shape[2:], out_hw, C) is not None)



class _Layout:
    """Where everything lies in the flat, phase-split layout of one geometry.

    A block of ``cb`` channels is a buffer (cb, s_h, s_w, line): for each channel and
    phase (a, b) one line holding the N images' phases one after another, ``Hq x Wq``
    values each, then ``tail`` zeros (the farthest tap reads that far past the end).

    * ``taps``: per tap t = i*kw + j, its phase (a, b) and offset on the line;
    * ``places``: per phase (a, b), where the input goes: input rows ``h0::s_h`` and
      columns ``w0::s_w`` land at phase rows ``u0..`` and columns ``v0..``.
    """

    def __init__(self, n, in_hw, out_hw, kernel, stride, padding, dilation):
        (H, W), (Ho, Wo) = in_hw, out_hw
        (kh, kw), (sh, sw), (pt, pl), (dh, dw) = kernel, stride, padding, dilation
        Hp = max(pt + H, sh * (Ho - 1) + dh * (kh - 1) + 1)       # the padded size used
        Wp = max(pl + W, sw * (Wo - 1) + dw * (kw - 1) + 1)
        self.n, self.phases, self.out_hw = n, (sh, sw), (Ho, Wo)
        self.Hq, self.Wq = -(-Hp // sh), -(-Wp // sw)
        self.span = n * self.Hq * self.Wq                         # the images, on one line
        self.taps = [((i * dh) % sh, (j * dw) % sw, (i * dh // sh) * self.Wq + j * dw // sw)
                     for i in range(kh) for j in range(kw)]
        self.line = self.span + max(o for _, _, o in self.taps)
        self.places = []
        for a in range(sh):
            for b in range(sw):
                h0, w0 = (a - pt) % sh, (b - pl) % sw             # first input row/col of the phase
                if h0 < H and w0 < W:
                    self.places.append((a, b, h0, w0, (pt + h0) // sh, (pl + w0) // sw))

    def channels_per_block(self, channels, threads):
        """Channels per block: ~BLOCK_ELEMENTS values in a block's buffer, and a number of
        blocks that the threads share evenly."""
        per_channel = self.phases[0] * self.phases[1] * self.line
        count = max(threads, -(-channels * per_channel // BLOCK_ELEMENTS))
        count = -(-count // threads) * threads
        return max(1, -(-channels // count))

    def grid(self, buf, a, b):
        """Phase (a, b) of a block's buffer as (cb, N, Hq, Wq) (a view)."""
        return buf[:, a, b, :self.span].reshape(buf.shape[0], self.n, self.Hq, self.Wq)

    def fill(self, buf, x):
        """``buf`` <- the padded, phase-split images of ``x`` (N, cb, H, W)."""
        buf[...] = 0
        for a, b, h0, w0, u0, v0 in self.places:
            part = x[:, :, h0::self.phases[0], w0::self.phases[1]].transpose(1, 0, 2, 3)
            self.grid(buf, a, b)[:, :, u0:u0 + part.shape[2], v0:v0 + part.shape[3]] = part

    def unfill(self, buf, gx):
        """``gx`` (N, cb, H, W) <- the input pixels' entries of ``buf`` (the inverse of :meth:`fill`)."""
        for a, b, h0, w0, u0, v0 in self.places:
            part = gx[:, :, h0::self.phases[0], w0::self.phases[1]].transpose(1, 0, 2, 3)
            part[...] = self.grid(buf, a, b)[:, :, u0:u0 + part.shape[2], v0:v0 + part.shape[3]]

    def valid(self, flat):
        """The output pixels (cb, N, Ho, Wo) of a flat (cb, span) output (a view)."""
        Ho, Wo = self.out_hw
        return flat.reshape(flat.shape[0], self.n, self.Hq, self.Wq)[:, :, :Ho, :Wo]


def _blocks(total, step):
    return [(c0, min(total, c0 + step)) for c0 in range(0, total, step)]


def depthwise_forward(x, weight, bias, stride, padding, dilation, out_hw):
    """``y = conv2d(x, weight, groups=C) + bias`` for a depthwise weight (C, 1, kh, kw).

    Args: x (N, C, H, W); bias (C,) or None; stride, padding (top, left), dilation as
    pairs; out_hw (Ho, Wo). Returns y (N, C, Ho, Wo).
    """
    N, C, H, W = x.shape
    if layout((H, W), out_hw, C) == "channels_last":
        return _channels_last_forward(x, weight, bias, stride, padding, dilation, out_hw)
    lay = _Layout(N, (H, W), out_hw, weight.shape[2:], stride, padding, dilation)
    w = weight.reshape(C, -1)
    y = np.empty((N, C) + tuple(out_hw), dtype=x.dtype)
    step = lay.channels_per_block(C, num_threads())
    blocks = _blocks(C, step)

    def work(first, last):
        buf = np.empty((step,) + lay.phases + (lay.line,), dtype=x.dtype)
        acc, tmp = (np.empty((step, lay.span), dtype=x.dtype) for _ in range(2))
        for c0, c1 in blocks[first:last]:
            cb = c1 - c0
            b, a, t_ = buf[:cb], acc[:cb], tmp[:cb]
            lay.fill(b, x[:, c0:c1])
            for t, (pa, pb, off) in enumerate(lay.taps):
                src = b[:, pa, pb, off:off + lay.span]
                if t == 0:
                    np.multiply(src, w[c0:c1, :1], out=a)
                else:
                    np.multiply(src, w[c0:c1, t:t + 1], out=t_)
                    a += t_
            if bias is not None:
                a += bias[c0:c1, None]
            y[:, c0:c1] = lay.valid(a).transpose(1, 0, 2, 3)

    parallel_for(work, len(blocks))
    return y


def depthwise_backward(grad_out, x, weight, stride, padding, dilation, need_x=True, need_w=True):
    """Grad input (N, C, H, W) and grad weight (C, 1, kh, kw) of :func:`depthwise_forward`
    (either None when not needed), from ``grad_out`` (N, C, Ho, Wo). One pass over each
    block of channels makes both: they share the flat ``dy``."""
    N, C, H, W = x.shape
    Ho, Wo = grad_out.shape[2:]
    kh, kw = weight.shape[2:]
    if layout((H, W), (Ho, Wo), C) == "channels_last":
        return _channels_last_backward(grad_out, x, weight, stride, padding, dilation, need_x, need_w)
    lay = _Layout(N, (H, W), (Ho, Wo), (kh, kw), stride, padding, dilation)
    w = weight.reshape(C, -1)
    gx = np.empty(x.shape, dtype=x.dtype) if need_x else None
    gw = np.empty((kh * kw, C), dtype=x.dtype) if need_w else None     # tap-major: rows contiguous
    step = lay.channels_per_block(C, num_threads())
    blocks = _blocks(C, step)

    def work(first, last):
        dy = np.zeros((step, lay.span), dtype=x.dtype)            # dropped places stay zero
        tmp = np.empty((step, lay.span), dtype=x.dtype)
        buf = np.empty((step,) + lay.phases + (lay.line,), dtype=x.dtype)
        for c0, c1 in blocks[first:last]:
            cb = c1 - c0
            d, b = dy[:cb], buf[:cb]
            lay.valid(d)[...] = grad_out[:, c0:c1].transpose(1, 0, 2, 3)
            if need_w:                                            # dots with the input's taps
                lay.fill(b, x[:, c0:c1])
                for t, (pa, pb, off) in enumerate(lay.taps):
                    np.matmul(d[:, None, :], b[:, pa, pb, off:off + lay.span, None],
                              out=gw[t, c0:c1].reshape(cb, 1, 1))
            if need_x:                                            # scatter dy back through the taps
                b[...] = 0
                t_ = tmp[:cb]
                for t, (pa, pb, off) in enumerate(lay.taps):
                    np.multiply(d, w[c0:c1, t:t + 1], out=t_)
                    b[:, pa, pb, off:off + lay.span] += t_
                lay.unfill(b, gx[:, c0:c1])

    parallel_for(work, len(blocks))
    return gx, None if gw is None else gw.T.reshape(C, 1, kh, kw).copy()


# ---------------------------------------------------------------------- small maps, channels last
def _tap_rectangles(in_hw, out_hw, kernel, stride, padding, dilation):
    """Per tap t = i*kw + j whose source lies in the image for some output pixel:
    ``(t, oy, ox, iy, ix)``, the slices of output rows/columns and of the input rows/columns
    (strided by the stride) they read. Output pixel o reads input ``s*o + i*d - p``."""
    rects = []
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            pair = []
            for n_in, n_out, s, off in ((in_hw[0], out_hw[0], stride[0], i * dilation[0] - padding[0]),
                                        (in_hw[1], out_hw[1], stride[1], j * dilation[1] - padding[1])):
                o0 = max(0, -(off // s))                     # first o with s*o + off >= 0
                o1 = min(n_out, (n_in - 1 - off) // s + 1)   # past the last o with s*o + off < n_in
                if o1 <= o0:
                    break
                pair.append((slice(o0, o1), slice(s * o0 + off, s * (o1 - 1) + off + 1, s)))
            if len(pair) == 2:
                rects.append((i * kernel[1] + j, pair[0][0], pair[1][0], pair[0][1], pair[1][1]))
    return rects


#: Channels-last work (values times taps) below which one thread does it all.
PARALLEL_MIN_ELEMENTS = 1 << 20


def _over_images(work, n, elements):
    """``work(n0, n1)`` over the batch (the results, in order), split among the threads
    when there is enough work: ``elements`` values times taps."""
    return parallel_for(work, n, threads=None if elements >= PARALLEL_MIN_ELEMENTS else 1)


def _channels_last_forward(x, weight, bias, stride, padding, dilation, out_hw):
    N, C, H, W = x.shape
    kh, kw = weight.shape[2:]
    rects = _tap_rectangles((H, W), out_hw, (kh, kw), stride, padding, dilation)
    wt = np.ascontiguousarray(weight.reshape(C, kh * kw).T)            # (taps, C): a row per tap
    y = np.empty((N, C) + tuple(out_hw), dtype=x.dtype)

    def work(n0, n1):
        xl = np.ascontiguousarray(x[n0:n1].transpose(0, 2, 3, 1))      # (n, H, W, C)
        acc = np.zeros((n1 - n0,) + tuple(out_hw) + (C,), dtype=x.dtype)
        tmp = np.empty_like(acc)
        for t, oy, ox, iy, ix in rects:
            part = tmp[:, oy, ox]
            np.multiply(xl[:, iy, ix], wt[t], out=part)
            acc[:, oy, ox] += part
        if bias is not None:
            acc += bias
        y[n0:n1] = acc.transpose(0, 3, 1, 2)

    _over_images(work, N, y.size * len(rects))
    return y


def _channels_last_backward(grad_out, x, weight, stride, padding, dilation, need_x, need_w):
    N, C, H, W = x.shape
    kh, kw = weight.shape[2:]
    rects = _tap_rectangles((H, W), grad_out.shape[2:], (kh, kw), stride, padding, dilation)
    wt = np.ascontiguousarray(weight.reshape(C, kh * kw).T)
    gx = np.empty(x.shape, dtype=x.dtype) if need_x else None

    def work(n0, n1):
        xl = np.ascontiguousarray(x[n0:n1].transpose(0, 2, 3, 1)) if need_w else None
        gl = np.ascontiguousarray(grad_out[n0:n1].transpose(0, 2, 3, 1))
        gw = np.zeros((kh * kw, C), dtype=np.float64) if need_w else None
        acc = np.zeros((n1 - n0, H, W, C), dtype=x.dtype) if need_x else None
        for t, oy, ox, iy, ix in rects:
            g = gl[:, oy, ox]
            if need_w:
                gw[t] = np.einsum("nyxc,nyxc->c", g, xl[:, iy, ix])
            if need_x:
                acc[:, iy, ix] += g * wt[t]
        if need_x:
            gx[n0:n1] = acc.transpose(0, 3, 1, 2)
        return gw

    parts = _over_images(work, N, grad_out.size * len(rects))
    if not need_w:
        return gx, None
    return gx, sum(parts).T.reshape(C, 1, kh, kw).astype(x.dtype)      # the threads' partial sums
