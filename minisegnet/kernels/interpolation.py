"""Resizing as matrices: the weights that resize one axis, and applying them separably.

Nearest, nearest-exact, bilinear, bicubic and antialiased resizing of an image batch ``x`` of shape (N, C, H, W) to
(N, C, OH, OW) are *linear* maps, and they act on the rows and on the columns
independently. Each is therefore two small matrices::

    out[n, c] = A_h @ x[n, c] @ A_w.T          A_h: (OH, H),   A_w: (OW, W)

Row ``o`` of ``A_h`` says how output row ``o`` mixes the input rows: bilinear puts
``1 - t`` and ``t`` on the two input rows around the source coordinate of ``o``,
nearest puts a single 1. The gradient of a linear map is its transpose, so the
backward pass is the same routine with the transposed matrices::

    grad_x[n, c] = A_h.T @ grad_out[n, c] @ A_w

Adaptive average pooling (:mod:`.pooling`) is the same shape of computation with
averaging matrices, and uses :func:`separable_apply` too.

One difference from PyTorch's direct kernels: a product with a matrix touches every
entry of a row, so a NaN or inf in the input spreads along its whole row and column
of the output (``0 * inf = nan``) instead of only to its neighbours.
"""
import functools

import numpy as np

from .. import backend


# ---------------------------------------------------------------------- coordinates
def source_coordinates(in_size, out_size, align_corners, scale_factor=None):
    """Where each output pixel samples the input, for linear interpolation (PyTorch's rule).

    Returns a float64 array of length ``out_size``: output index ``i`` reads the input
    at the (fractional) coordinate ``src[i]``.

    * ``align_corners=True``: the first and last pixel *centres* of input and output
      line up: ``src = i * (in - 1) / (out - 1)`` (and 0 when ``out == 1``).
    * ``align_corners=False``: the *edges* of the images line up and pixels are
      sampled at their centres: ``src = (i + 0.5) * in / out - 0.5``, clamped at 0.
      When ``scale_factor`` was given (and not recomputed), PyTorch uses
      ``1 / scale_factor`` in place of ``in / out``; the two differ when
      ``in * scale_factor`` is not an integer.

    Example, 2 -> 4 pixels: True gives [0, 1/3, 2/3, 1]; False gives
    [0 (from -0.25), 0.25, 0.75, 1.25].
    """
    i = np.arange(out_size, dtype=np.float64)
    if align_corners:
        ratio = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        return i * ratio
    ratio = 1.0 / scale_factor if scale_factor else in_size / out_size
    return np.maximum(ratio * (i + 0.5) - 0.5, 0.0)


def linear_weights(in_size, out_size, align_corners, scale_factor=None):
    """The (out_size, in_size) matrix of 1-D linear interpolation along one axis.

    Output ``i`` reads source coordinate ``s = src[i]`` (:func:`source_coordinates`);
    with ``i0 = floor(s)`` (at most ``in - 1``), ``t = s - i0`` and ``i1 = i0 + 1``
    (or ``i0`` at the last pixel) the row is ``(1 - t)`` at ``i0`` and ``t`` at ``i1``.
    Each row sums to 1. Same sizes give the identity, as in PyTorch.
    """
    weights = np.zeros((out_size, in_size))
    if in_size == out_size:
        np.fill_diagonal(weights, 1.0)
        return weights
    src = source_coordinates(in_size, out_size, align_corners, scale_factor)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    t = np.clip(src - i0, 0.0, 1.0)
    i1 = i0 + (i0 < in_size - 1)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, i0), 1.0 - t)
    np.add.at(weights, (rows, i1), t)
    return weights


def nearest_indices(in_size, out_size, scale_factor=None):
    """Input index read by each output index for mode='nearest': ``floor(i * scale)``.

    ``scale`` is ``in / out``, or ``1 / scale_factor`` when a scale factor was given.
    PyTorch computes this product in float32 and so do we, so that the rare index
    where float32 and float64 round differently agrees with PyTorch too. The index
    is capped at ``in - 1``; same sizes give the identity and doubling gives ``i // 2``.
    """
    i = np.arange(out_size)
    if out_size == in_size:
        return i
    if out_size == 2 * in_size:
        return i // 2
    if scale_factor:
        scale = np.float32(1.0 / scale_factor)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    src = np.floor(i.astype(np.float32) * scale).astype(np.int64)
    return np.minimum(src, in_size - 1)


def nearest_weights(in_size, out_size, scale_factor=None):
    """The (out_size, in_size) 0/1 matrix of nearest resizing: one 1 per row."""
    weights = np.zeros((out_size, in_size))
    weights[np.arange(out_size), nearest_indices(in_size, out_size, scale_factor)] = 1.0
    return weights


def nearest_exact_indices(in_size, out_size, scale_factor=None):
    """Input index read by each output index for mode='nearest-exact': ``floor((i + 0.5) * scale)``.

    The half-pixel rule: output pixel centres ``i + 0.5`` are mapped to the input and the
    pixel they land in is read, so downsampling by 2 reads inputs 1, 3, 5, ... (the
    centre-most ones) where 'nearest' reads 0, 2, 4, .... ``scale`` is the float32 of
    ``in / out`` (or ``1 / scale_factor``), the product is rounded to float32 before the
    floor, as PyTorch does; the index is capped at ``in - 1``.
    """
    if scale_factor:
        scale = np.float32(1.0 / scale_factor)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
    product = ((np.arange(out_size) + 0.5) * np.float64(scale)).astype(np.float32)
    return np.minimum(np.floor(product).astype(np.int64), in_size - 1)


def nearest_exact_weights(in_size, out_size, scale_factor=None):
    """The (out_size, in_size) 0/1 matrix of mode='nearest-exact': one 1 per row."""
    weights = np.zeros((out_size, in_size))
    weights[np.arange(out_size), nearest_exact_indices(in_size, out_size, scale_factor)] = 1.0
    return weights


def _scale(in_size, out_size, align_corners, scale_factor):
    """PyTorch's ``area_pixel_compute_scale``: input pixels per output pixel."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return 1.0 / scale_factor if scale_factor else in_size / out_size


def cubic_coefficients(t, a=-0.75):
    """The 4 weights of cubic convolution for fractional offset ``t`` (an array), shape (4, len(t)).

    Keys' kernel ``W(x) = (a+2)|x|^3 - (a+3)|x|^2 + 1`` for ``|x| <= 1`` and
    ``a|x|^3 - 5a|x|^2 + 8a|x| - 4a`` for ``1 < |x| < 2``, evaluated at the distances
    ``1 + t, t, 1 - t, 2 - t`` of the taps ``i0 - 1 .. i0 + 2``. PyTorch uses ``a = -0.75``.
    """
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1              # noqa: E731  |x| <= 1
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a          # noqa: E731  1 < |x| < 2
    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)])


def cubic_weights(in_size, out_size, align_corners, scale_factor=None):
    """The (out_size, in_size) matrix of bicubic interpolation along one axis (PyTorch's rule).

    Output ``i`` reads source coordinate ``s = i * scale`` (align_corners) or
    ``(i + 0.5) * scale - 0.5`` (not clamped at 0, unlike linear); with ``i0 = floor(s)``
    and ``t = s - i0`` the taps ``i0 - 1 .. i0 + 2`` get :func:`cubic_coefficients`,
    and taps outside the image are clamped to the border pixel (their weights add
    there). Each row sums to 1. Unlike the other modes, PyTorch resamples even when the
    size stays the same, so a ``scale_factor`` of 1.2 on 2 pixels (still 2) is not the
    identity.
    """
    weights = np.zeros((out_size, in_size))
    scale = _scale(in_size, out_size, align_corners, scale_factor)
    i = np.arange(out_size, dtype=np.float64)
    src = i * scale if align_corners else scale * (i + 0.5) - 0.5
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    t = np.clip(src - i0, 0.0, 1.0)
    coefficients = cubic_coefficients(t)
    rows = np.arange(out_size)
    for k in range(4):
        np.add.at(weights, (rows, np.clip(i0 - 1 + k, 0, in_size - 1)), coefficients[k])
    return weights


def _triangle(x):
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def _keys_cubic(x, a=-0.5):
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def antialias_weights(in_size, out_size, align_corners, scale_factor=None, mode="bilinear"):
    """The (out_size, in_size) matrix of ``antialias=True`` resizing (PyTorch's, after PIL).

    Plain bilinear downsampling by 4 reads only 2 of every 4 input pixels, so it aliases.
    Antialiased resizing widens the filter with the scale: output ``i`` is centred at
    ``c = scale * (i + 0.5)`` and averages every input ``j`` within ``support`` of it
    (``support = scale`` for bilinear, ``2 * scale`` for bicubic, when downsampling; 1
    and 2 when upsampling) with weights ``filter((j + 0.5 - c) / scale)``, normalised to
    sum 1. The filter is the triangle for bilinear and Keys' cubic with ``a = -0.5``
    (not -0.75) for bicubic. Same sizes give the identity.
    """
    weights = np.zeros((out_size, in_size))
    if in_size == out_size:
        np.fill_diagonal(weights, 1.0)
        return weights
    scale = _scale(in_size, out_size, align_corners, scale_factor)
    half_width = 1.0 if mode == "bilinear" else 2.0
    support = half_width * scale if scale >= 1.0 else half_width
    inv_scale = 1.0 / scale if scale >= 1.0 else 1.0
    max_taps = int(np.ceil(support)) * 2 + 1
    filter_fn = _triangle if mode == "bilinear" else _keys_cubic
    for i in range(out_size):
        center = scale * (i + 0.5)
        start = max(int(center - support + 0.5), 0)                    # int(): truncation, as C
        size = min(max(min(int(center + support + 0.5), in_size) - start, 0), max_taps)
        w = filter_fn((np.arange(start, start + size) - center + 0.5) * inv_scale)
        total = w.sum()
        weights[i, start:start + size] = w / total if total != 0.0 else w
    return weights


@functools.lru_cache(maxsize=512)
def _cached_matrix(builder, args, xp, dtype):
    matrix = xp.asarray(builder(*args), dtype=dtype)
    if xp is np:
        matrix.flags.writeable = False     # shared by every call with these sizes
    return matrix


def cached_matrix(builder, args, like, dtype=None):
    """``builder(*args)`` as an array of ``like``'s module and dtype (or ``dtype``), built once.

    ``builder`` is a function returning a float64 NumPy matrix (:func:`linear_weights`,
    :func:`nearest_weights`, ...) and ``args`` a hashable tuple of its arguments. Models
    resize with the same sizes at every step, so the small matrices are computed (and
    copied to the GPU) only once.
    """
    dtype = np.dtype(like.dtype if dtype is None else dtype)
    return _cached_matrix(builder, tuple(args), backend.array_module(like), dtype)


# ---------------------------------------------------------------------- application
SMALL_PLANE = 256            # planes of at most this many pixels (16 x 16) use one Kronecker matrix
SMALL_PRODUCT = 1 << 18      # multiply-adds of one plane's product below which a batch of them is fast


def _matmul(a, b):
    """``a @ b``, batched over leading dims. With a contracted length of 1 the product
    is an outer product, which BLAS computes slowly; einsum does it as a broadcast."""
    if a.shape[-1] == 1:
        return backend.array_module(a, b).einsum("...ik,...kj->...ij", a, b)
    return a @ b


def _along_columns(x, matrix):
    """``x[b] @ matrix.T`` for every plane: (B, H, W) -> (B, H, K), one product for all rows."""
    b, h, w = x.shape
    return _matmul(x.reshape(b * h, w), matrix.T).reshape(b, h, matrix.shape[0])


def _along_rows(x, matrix):
    """``matrix @ x[b]`` for every plane: (B, H, W) -> (B, R, W).

    Small planes: a batch of small products. Large planes: BLAS would start and sync
    its threads once per plane, which is slow (very slow on a busy machine), so the
    planes are transposed to make the rows the last axis, multiplied in one product
    and transposed back; the two copies cost far less.
    """
    xp = backend.array_module(x)
    b, h, w = x.shape
    rows = matrix.shape[0]
    if rows * h * w <= SMALL_PRODUCT:
        return _matmul(matrix, x)
    transposed = _along_columns(x.transpose(0, 2, 1), matrix)           # (B, W, R)
    return xp.ascontiguousarray(transposed.transpose(0, 2, 1))


def separable_apply(x, row_matrix, col_matrix):
    """``row_matrix @ x[n, c] @ col_matrix.T`` for every image: (N, C, H, W) -> (N, C, R, K).

    ``row_matrix`` is (R, H) and ``col_matrix`` (K, W). Two ways to compute it:

    * One step, for small planes (pooled maps, their gradients): flattening each
      plane row by row turns ``A @ X @ B.T`` into ``kron(A, B) @ x.flat``, so
      ``x.reshape(N * C, H * W) @ kron(A, B).T`` is a single (R*K, H*W) product.
      It does more arithmetic than two steps, but in one efficient call.
    * Two steps, columns then rows or rows then columns. Both orders cost the same
      arithmetic when the two axes scale alike; the row step (see ``_along_rows``)
      is the less efficient one, so it gets the smaller array: rows first when the
      image grows, columns first when it shrinks.
    """
    n, c, h, w = x.shape
    rows, cols = row_matrix.shape[0], col_matrix.shape[0]
    if h * w <= SMALL_PLANE and rows * cols <= SMALL_PLANE:
        # kron(A, B)[r*K + k, i*W + j] = A[r, i] * B[k, j]  (what xp.kron computes, faster)
        kron = (row_matrix[:, None, :, None] * col_matrix[None, :, None, :]).reshape(rows * cols, h * w)
        return _matmul(x.reshape(n * c, h * w), kron.T).reshape(n, c, rows, cols)
    planes = x.reshape(n * c, h, w)
    cost_rows_first = rows * h * w + rows * w * cols
    cost_cols_first = h * w * cols + rows * h * cols
    if cost_rows_first < cost_cols_first or (cost_rows_first == cost_cols_first and cols >= w):
        out = _along_columns(_along_rows(planes, row_matrix), col_matrix)
    else:
        out = _along_rows(_along_columns(planes, col_matrix), row_matrix)
    return out.reshape(n, c, rows, cols)
