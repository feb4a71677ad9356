"""``interpolate``: resize (N, C, H, W) feature maps as ``F.interpolate`` does in 2-d.

Segmentation networks predict at 1/8 or 1/32 of the image size and resize the logits
back up with ``F.interpolate(logits, size=image.shape[2:], mode='bilinear',
align_corners=...)``; PSPNet resizes each pooled pyramid level to the feature size.

Every mode is a linear map that acts on rows and columns separately, so the forward is
``A_h @ x[n, c] @ A_w.T`` with two small matrices and the backward the transpose,
``A_h.T @ grad[n, c] @ A_w`` (:mod:`minisegnet.kernels.interpolation` builds them;
'nearest' and 'nearest-exact' run forward as a gather). 'area' is adaptive average
pooling (:func:`minisegnet.functional.adaptive_avg_pool2d`).

The 1-d and 3-d forms (3-d or 5-d input, modes 'linear' and 'trilinear') are out of
minisegnet's scope and refused.
"""
import math
import numbers

from ..autograd import Function
from ..kernels import interpolation as kernels
from .pooling import adaptive_avg_pool2d, check_image_batch

MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
INTERPOLATING = ("bilinear", "bicubic")           # the modes that take align_corners and antialias
OUT_OF_SCOPE = ("linear", "trilinear")


def axis_matrix(mode, in_size, out_size, align_corners, scale, antialias):
    """``(builder, args)`` of the (out, in) matrix that resizes one axis in ``mode``."""
    if mode == "nearest":
        return kernels.nearest_weights, (in_size, out_size, scale)
    if mode == "nearest-exact":
        return kernels.nearest_exact_weights, (in_size, out_size, scale)
    if antialias:
        return kernels.antialias_weights, (in_size, out_size, align_corners, scale, mode)
    if mode == "bicubic":
        return kernels.cubic_weights, (in_size, out_size, align_corners, scale)
    return kernels.linear_weights, (in_size, out_size, align_corners, scale)


class Resize(Function):
    """``out[n, c] = A_h @ x[n, c] @ A_w.T``; backward ``A_h.T @ grad_out[n, c] @ A_w``."""

    @staticmethod
    def forward(ctx, x, size, mode, align_corners, scales, antialias=False):
        (h, w), (oh, ow) = x.shape[2:], size
        ctx.matrices = tuple(kernels.cached_matrix(*axis_matrix(mode, n, o, align_corners, s, antialias), x)
                             for n, o, s in ((h, oh, scales[0]), (w, ow, scales[1])))
        if mode in ("nearest", "nearest-exact"):
            index = kernels.nearest_indices if mode == "nearest" else kernels.nearest_exact_indices
            rows = kernels.cached_matrix(index, (h, oh, scales[0]), x, "int64")
            cols = kernels.cached_matrix(index, (w, ow, scales[1]), x, "int64")
            # a gather, out[i, j] = x[rows[i], cols[j]], one axis at a time (whole rows are
            # copied at once along axis 2; the columns' element gather gets the fewer rows)
            if oh < h:
                return x.take(rows, axis=2).take(cols, axis=3)
            return x.take(cols, axis=3).take(rows, axis=2)
        return kernels.separable_apply(x, *ctx.matrices)

    @staticmethod
    def backward(ctx, grad_out):
        row_matrix, col_matrix = ctx.matrices
        return kernels.separable_apply(grad_out, row_matrix.T, col_matrix.T), None, None, None, None, None


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _parse_pair(value, name, kind):
    """An int/number or a pair of them as a 2-tuple; TypeError naming ``name`` otherwise."""
    ok = _is_int if kind == "int" else (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool))
    if ok(value):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(ok(v) for v in value):
        return tuple(value)
    raise TypeError(f"interpolate: {name} must be {'an int' if kind == 'int' else 'a number'} "
                    f"or a pair of them for a 4-d input, got {value!r}")


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize ``input`` (N, C, H, W) to (N, C, OH, OW); PyTorch's ``F.interpolate`` for 2-d.

    Give exactly one of ``size`` ((OH, OW) or one int for both) and ``scale_factor``
    (a number or a pair; then ``OH = floor(H * scale)``).

    **Where does output pixel i read the input?** Along each axis, output index ``i``
    samples the input at a fractional coordinate ``src(i)``:

    * ``align_corners=True``: the centres of the corner pixels line up,
      ``src(i) = i * (in - 1) / (out - 1)``.
    * ``align_corners=False`` (the default; ``None`` means False): the image *edges*
      line up and pixels are sampled at their centres,
      ``src(i) = (i + 0.5) * in / out - 0.5``, clamped at 0. When ``scale_factor`` is
      given, PyTorch puts ``1 / scale_factor`` where ``in / out`` stands (they differ
      when ``in * scale_factor`` is not an integer) unless
      ``recompute_scale_factor=True``.

    ``mode='bilinear'`` then blends the two nearest input pixels of ``src`` with
    weights ``1 - t`` and ``t`` (``t`` the fractional part), once along the rows and
    once along the columns. Worked example, one row ``[a, b]`` resized from 2 to 4::

        align_corners=True:   src = [0, 1/3, 2/3, 1]
                              out = [a, (2a + b)/3, (a + 2b)/3, b]
        align_corners=False:  src = [-0.25 -> 0, 0.25, 0.75, 1.25]
                              out = [a, 0.75a + 0.25b, 0.25a + 0.75b, b]

    (1.25 lies past the last pixel, which is used alone.) With ``a, b = 0, 1`` that is
    ``[0, 1/3, 2/3, 1]`` against ``[0, 0.25, 0.75, 1]``: True stretches the corner
    values over the output, False keeps each pixel's area, the convention of
    strided networks.

    ``mode='nearest'`` copies input ``floor(i * in / out)`` (or ``floor(i / scale_factor)``),
    PyTorch's rule, computed in float32 as PyTorch does; it accepts no ``align_corners``.
    ``mode='nearest-exact'`` copies ``floor((i + 0.5) * in / out)``, the input pixel under
    the output pixel's centre (symmetric: halving reads pixels 1, 3, 5, ...).

    ``mode='bicubic'`` blends the 4 nearest pixels along each axis with Keys' cubic
    weights (``A = -0.75``, as PyTorch), taps beyond the border clamped to the edge
    pixel; it can overshoot the input's range. ``mode='area'`` averages each output's
    share of the input: adaptive average pooling to the output size.

    ``antialias=True`` (bilinear, bicubic) widens the filter by the scale when
    downsampling, so every input pixel contributes (PIL's resize, PyTorch's definition);
    see :func:`minisegnet.kernels.interpolation.antialias_weights`.

    Unlike PyTorch, a NaN or inf in the input spreads along its whole row and column of
    a bilinear output (the resize is a matrix product); finite inputs are unaffected.
    """
    op = "interpolate"
    if mode in OUT_OF_SCOPE:
        raise NotImplementedError(f"interpolate: mode={mode!r} resizes 1-d or 3-d data, which minisegnet "
                                  f"leaves out of scope (2-d spatial ops only); 2-d modes: {MODES}")
    if getattr(input, "ndim", 4) in (3, 5):
        raise NotImplementedError(
            f"interpolate: a {input.ndim}-d input means {input.ndim - 2}-d resizing in PyTorch, which "
            f"minisegnet leaves out of scope; give an (N, C, H, W) input (add a batch axis with "
            f".unsqueeze(0) for one (C, H, W) image)")
    check_image_batch(input, op)
    if mode not in MODES:
        raise ValueError(f"interpolate: unknown mode {mode!r}; expected one of {MODES}")
    if align_corners is not None and mode not in INTERPOLATING:
        raise ValueError(f"interpolate: align_corners can only be set with the interpolating modes "
                         f"{INTERPOLATING}, got align_corners={align_corners!r} with mode={mode!r}")
    if antialias and mode not in INTERPOLATING:
        raise ValueError(f"interpolate: antialias=True is defined for the modes {INTERPOLATING} only, "
                         f"got mode={mode!r}")
    if size is not None and scale_factor is not None:
        raise ValueError(f"interpolate: give only one of size and scale_factor, got size={size!r} "
                         f"and scale_factor={scale_factor!r}")
    if size is None and scale_factor is None:
        raise ValueError("interpolate: either size or scale_factor must be given")
    if recompute_scale_factor and size is not None:
        raise ValueError("interpolate: recompute_scale_factor is not meaningful with an explicit size")
    in_size = tuple(input.shape[2:])
    if size is not None:
        out_size = tuple(int(s) for s in _parse_pair(size, "size", "int"))
        if min(out_size) < 1:
            raise ValueError(f"interpolate: size must be positive, got {size!r}")
        scales = (None, None)
    else:
        factors = tuple(float(f) for f in _parse_pair(scale_factor, "scale_factor", "number"))
        if not min(factors) > 0:
            raise ValueError(f"interpolate: scale_factor must be positive, got {scale_factor!r}")
        out_size = tuple(math.floor(n * f) for n, f in zip(in_size, factors))
        if min(out_size) < 1:
            raise ValueError(f"interpolate: scale_factor {scale_factor!r} turns the input size "
                             f"{in_size} into {out_size}; the output size must be positive")
        scales = (None, None) if recompute_scale_factor else factors
    if mode == "area":
        return adaptive_avg_pool2d(input, out_size)
    return Resize.apply(input, out_size, mode, bool(align_corners), scales, bool(antialias))
