"""The plan of a 2-D convolution: which input columns each matrix product reads.

Shapes are PyTorch's: input ``x`` (N, C, H, W), weight ``w`` (O, C/groups, kh, kw),
output ``y`` (N, O, Ho, Wo). With stride (sh, sw), dilation (dh, dw) and the top/left
padding (pt, pl), kernel tap (i, j) links output pixel (yo, xo) to input pixel

    r = sh*yo + i*dh - pt,      c = sw*xo + j*dw - pl,

and a pixel (r, c) outside the image is padding (zero). The output size comes from the
caller, so asymmetric padding ('same' with an even kernel) and conv_transpose2d's
output_padding need no special case: only the top/left padding decides *where* taps read.

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

This module holds the geometry (:class:`ConvPlan`, its :class:`Band`s) and the two
gathers that follow from it: :func:`band_input` (the band buffer of a block of images)
and :func:`row_weights` (the matching W_i). The products themselves are in
:mod:`minisegnet.kernels.conv`; the textbook version of all this is
:mod:`minisegnet.kernels.conv_reference`.
"""
import functools

__all__ = ["conv_output_size", "pairs", "Band", "ConvPlan", "plan_for", "band_input", "row_weights"]

MAX_PADDING_SHARE = 0.25   # a kernel column joins the stacked band if <= 25% of it is padding


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


@functools.lru_cache(maxsize=1024)
def plan_for(in_hw, out_hw, kernel, stride, padding, dilation):
    """The :class:`ConvPlan` of a geometry (all arguments pairs of ints), made once: a
    network repeats the same few geometries every step, and a plan never changes."""
    return ConvPlan(in_hw, out_hw, kernel, stride, padding, dilation)


def band_input(xp, x, band, plan, scratch, groups, images_inside=False):
    """The band of ``x`` (nb, C, H, W) as (nb, groups, J*C/groups, U*Wb): a view or a copy.

    The contraction axis is ordered (kernel column, channel) within each group, matching
    :func:`row_weights`. With ``images_inside`` the images go inside each band row
    instead, (groups, J*C/groups, U*nb*Wb), always a copy: then the rows a tap reads, in
    every image at once, are one contiguous slice (the grad-weight product's layout).
    """
    nb, C, H, W = x.shape
    if plan.is_identity(band) and x.flags.c_contiguous and not images_inside:
        return x.reshape(nb, groups, C // groups, H * W)[..., :band.rows * W]
    J, U, Wb = len(band.columns), band.rows, band.width
    x5 = x.reshape(nb, groups, C // groups, H, W)
    if images_inside:
        buf = scratch.get("band", (groups, J, C // groups, U, nb, Wb))
        dst = buf.transpose(4, 0, 1, 2, 3, 5)               # seen as (nb, groups, J, C/g, U, Wb)
    else:
        buf = dst = scratch.get("band", (nb, groups, J, C // groups, U, Wb))
    for jj, column in enumerate(band.columns):
        _, v0, v1, _ = column
        if v0 > 0:
            dst[:, :, jj, :, :, :v0] = 0
        if v1 < Wb:
            dst[:, :, jj, :, :, v1:] = 0
        dst[:, :, jj, :, :, v0:v1] = plan.input_view(x5, band, column)
    if images_inside:
        return buf.reshape(groups, J * (C // groups), U * nb * Wb)
    return buf.reshape(nb, groups, J * (C // groups), U * Wb)


def row_weights(xp, weight, groups, band):
    """W_i of every tap of ``band`` as (taps, g, O/g, J*C/g): the kernel columns of the band
    side by side along the contraction axis, as :func:`band_input` orders them."""
    O, Cg, kh, kw = weight.shape
    w = weight.reshape(groups, O // groups, Cg, kh, kw).transpose(3, 0, 1, 4, 2)  # (kh, g, O/g, kw, C/g)
    js = band.js
    cols = slice(js[0], js[-1] + 1) if js == list(range(js[0], js[-1] + 1)) else js
    out = xp.empty((len(band.taps), groups, O // groups, len(js), Cg), dtype=weight.dtype)
    for t, tap in enumerate(band.taps):
        out[t] = w[tap[0]][:, :, cols]
    return out.reshape(len(band.taps), groups, O // groups, len(js) * Cg)



def pairs(stride, padding, dilation):
    """stride, padding, dilation (ints or pairs) as three pairs of ints."""
    def pair(v):
        if isinstance(v, (tuple, list)) or getattr(v, "ndim", 0):
            return int(v[0]), int(v[1])
        return int(v), int(v)
    return pair(stride), pair(padding), pair(dilation)
