# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lecture 2 — Inside the engine: tensors, autograd and convolution
#
# Every network in this course runs on a small engine written in NumPy (and CuPy on a
# GPU). It has three parts, and this lecture opens each one:
#
# 1. **Tensors** hold an array and remember which operation produced them.
# 2. **Autograd** walks those records backwards to compute gradients (reverse-mode
#    differentiation, the chain rule applied once per operation).
# 3. **Kernels** do the heavy array work. The most important one is convolution, which
#    we write three ways (a naive loop, *im2col* plus one matrix product, and the
#    library's per-tap products), check against finite differences, and time.

# %%
# %matplotlib inline
import pathlib, sys, time

# Find the repository (the folder holding minisegnet/) so the notebook runs without installing,
# and lectures/ for _course.py, the code the lectures share (training loop, MAC counts, sliders).
for folder in (pathlib.Path.cwd().resolve(), *pathlib.Path.cwd().resolve().parents):
    if (folder / "minisegnet" / "__init__.py").is_file():
        for path in (folder, folder / "lectures"):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
        break

import numpy as np
import matplotlib.pyplot as plt
import minisegnet as ms
import minisegnet.functional as F
from minisegnet import nn
import _course as course

ms.manual_seed(0)                      # every random draw of the library starts from here
plt.rcParams.update({"figure.dpi": 80, "image.interpolation": "nearest", "axes.titlesize": 10})

# %% [markdown]
# ## 1. Tensors
#
# A `Tensor` wraps an array (`.data`, a NumPy array on the CPU) and mirrors PyTorch's
# interface: `.shape`, `.dtype`, arithmetic, `.sum()`, `.relu()`, `@`, indexing, ...
# Floating tensors created with `requires_grad=True` are *leaves* whose gradient we want.

# %%
x = ms.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
print(x)
print("shape", x.shape, "| dtype", x.dtype, "| requires_grad", x.requires_grad, "| data is a", type(x.data).__name__)
y = (x * x).sum()
print("y =", y.item(), "| produced by the op", y._node.fn.__name__)
y.backward()
print("dy/dx = 2x =\n", x.grad.numpy())

# %% [markdown]
# ## 2. A tiny graph, by hand and by autograd
#
# Take two numbers `a = 2`, `b = -3` and compute
#
# $$u = a\,b,\qquad v = e^{a},\qquad s = u + v,\qquad L = s^2 .$$
#
# Every operation creates a new tensor whose `._node` records the operation (its
# `Function`) and its inputs. Those records form a graph from the leaves to `L`. Below we
# draw the graph from those records, before calling `backward()`, which consumes them.

# %%
a = ms.tensor(2.0, dtype=ms.float64, requires_grad=True)
b = ms.tensor(-3.0, dtype=ms.float64, requires_grad=True)
u = a * b
v = a.exp()
s = u + v
L = s * s

def draw_graph(root, names):
    # place each tensor in a column by its depth (leaves in column 0), draw arrows input -> output
    depth, order = {}, []

    def visit(t):
        if id(t) not in depth:
            parents = [] if t._node is None else [p for p in t._node.inputs if p is not None]
            depth[id(t)] = 1 + max((visit(p) for p in parents), default=-1)
            order.append((t, parents))
        return depth[id(t)]

    visit(root)
    rows = {}
    where = {}
    for t, _ in order:
        col = depth[id(t)]
        where[id(t)] = (col, rows.get(col, 0))
        rows[col] = rows.get(col, 0) + 1
    fig, ax = plt.subplots(figsize=(2.6 * (max(depth.values()) + 1), 2.6))
    for t, parents in order:
        x0, y0 = where[id(t)]
        op = "leaf" if t._node is None else t._node.fn.__name__
        label = f"{names.get(id(t), '')}\n{op}\n= {t.item():.3f}"
        ax.text(x0, -y0, label, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc="0.92" if t._node is None else "lightblue"))
        for p in parents:
            x1, y1 = where[id(p)]
            ax.annotate("", (x0 - 0.28, -y0), (x1 + 0.28, -y1), arrowprops=dict(arrowstyle="->", color="0.4"))
    ax.set_xlim(-0.6, max(depth.values()) + 0.6); ax.set_ylim(-max(rows.values()) + 0.4, 0.6)
    ax.axis("off")
    plt.show()

draw_graph(L, {id(a): "a", id(b): "b", id(u): "u", id(v): "v", id(s): "s", id(L): "L"})

# %% [markdown]
# `L.backward()` visits the nodes from `L` back to the leaves (a topological order), and
# at each node calls its Function's `backward`, which turns the gradient of its output
# into gradients of its inputs. By the chain rule, with $\partial L/\partial s = 2s$:
#
# $$\frac{\partial L}{\partial a} = 2s\,(b + e^{a}), \qquad \frac{\partial L}{\partial b} = 2s\,a .$$
#
# Note that `a` feeds two operations (`Mul` and `Exp`): its gradient is the **sum** over
# both paths, which the engine accumulates.

# %%
L.backward()
s_val, a_val, b_val = s.item(), a.item(), b.item()
print(f"autograd: dL/da = {a.grad.item():.6f}, dL/db = {b.grad.item():.6f}")
print(f"by hand:  dL/da = {2 * s_val * (b_val + np.exp(a_val)):.6f}, dL/db = {2 * s_val * a_val:.6f}")

# %% [markdown]
# Two switches complete the picture. Inside `with ms.no_grad():` nothing is recorded
# (evaluation, parameter updates), and `t.detach()` gives a tensor that shares the data
# but is cut from the graph.
#
# ## 3. Writing an operation: a `Function`
#
# Each op of the library is a subclass of `ms.Function` with a `forward` and a `backward`
# next to each other. Unlike PyTorch, both see **raw arrays** (NumPy or CuPy), so an op is
# plain array code:
#
# * `forward(ctx, *inputs)` computes the output and saves on `ctx` what backward needs;
# * `backward(ctx, grad_out)` receives $\partial L/\partial y$ and returns a tuple with
#   one gradient per positional input ($\partial L/\partial x$, or `None`).
#
# As an example, the SiLU activation $y = x\,\sigma(x)$, with
# $\frac{dy}{dx} = \sigma(x)\,\bigl(1 + x\,(1 - \sigma(x))\bigr)$:

# %%
from minisegnet import backend

class SiLU(ms.Function):
    @staticmethod
    def forward(ctx, x):
        xp = backend.array_module(x)          # numpy on the CPU, cupy on the GPU
        sig = 1 / (1 + xp.exp(-x))
        ctx.save_for_backward(x, sig)
        return x * sig

    @staticmethod
    def backward(ctx, grad_out):
        x, sig = ctx.saved_tensors
        return (grad_out * sig * (1 + x * (1 - sig)),)

t = ms.tensor(np.linspace(-6, 4, 201), requires_grad=True)
y = SiLU.apply(t)
y.sum().backward()          # d(sum y)/dx_i = dy_i/dx_i: the derivative at every point

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(t.numpy(), y.numpy(), label="SiLU(x)")
ax.plot(t.numpy(), t.grad.numpy(), label="derivative from backward()")
ax.axhline(0, color="0.7", lw=0.8); ax.legend(); ax.set_xlabel("x")
plt.show()

# %% [markdown]
# ### Checking a backward pass
#
# A backward formula is easy to get subtly wrong. `ms.gradcheck(fn, *inputs)` compares
# it with **central finite differences**,
# $\frac{\partial L}{\partial x_i} \approx \frac{L(x + \varepsilon e_i) - L(x - \varepsilon e_i)}{2\varepsilon}$,
# for every input element, in float64 (in float32 the rounding error of the difference
# would swamp it). It returns `True` or raises an error that names the first element
# that disagrees. Here is the correct SiLU and a version that forgot one term:

# %%
from minisegnet.gradcheck import GradcheckError

class WrongSiLU(SiLU):
    @staticmethod
    def backward(ctx, grad_out):
        x, sig = ctx.saved_tensors
        return (grad_out * sig,)                # forgot the product rule's second term

x64 = ms.randn(3, 4, dtype=ms.float64, requires_grad=True)
print("SiLU:     ", ms.gradcheck(SiLU.apply, x64))
try:
    ms.gradcheck(WrongSiLU.apply, x64)
except GradcheckError as error:
    print("WrongSiLU:", error)


# %% [markdown]
# ## 4. Convolution
#
# A convolution layer with weight `w` of shape `(O, C, k, k)` computes, for every output
# channel `o` and position `(i, j)`, a dot product between the weight and the `k × k`
# window of all `C` input channels under it:
#
# $$y[o, i, j] = \sum_{c,\,u,\,v} w[o, c, u, v]\; x[c,\; i s + u d - p,\; j s + v d - p]$$
#
# (stride `s`, dilation `d`, zero padding `p`; the kernel is not flipped). Along each axis
# the output has $\lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1$ pixels.
#
# ### im2col: a convolution is one matrix product
#
# Copy every window into a column of a *patch matrix* `cols` of shape
# `(C·k·k, H_out·W_out)`. Reshape the weight into a matrix `(O, C·k·k)`. Then
# `w_matrix @ cols` is the output, `(O, H_out·W_out)`. Here is the idea with loops,
# on one image (stride 1, no padding), and a picture of `cols` for a 5 × 5 input whose
# pixels are numbered 1..25:

# %%
def im2col_loops(x, k):
    # (C, H, W) -> (C*k*k, H_out*W_out): column p holds the window under output pixel p
    C, H, W = x.shape
    Ho, Wo = H - k + 1, W - k + 1
    cols = np.empty((C * k * k, Ho * Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            cols[:, i * Wo + j] = x[:, i:i + k, j:j + k].ravel()
    return cols

x_small = np.arange(1, 26, dtype=np.float64).reshape(1, 5, 5)
cols = im2col_loops(x_small, 3)
w_small = np.array([[1, 0, 2], [0, 1, 0], [-1, 0, 1]], dtype=np.float64)
out_small = (w_small.reshape(1, -1) @ cols).reshape(3, 3)
print("cols:", cols.shape, "  output:\n", out_small)

pick = (1, 2)                       # the output pixel we follow
p = pick[0] * 3 + pick[1]
fig, axes = plt.subplots(1, 4, figsize=(14, 3.8), gridspec_kw={"width_ratios": [5, 9, 1.6, 3]})
axes[0].imshow(np.zeros((5, 5)), cmap="Greys", vmin=0, vmax=1)
for (r, c), v in np.ndenumerate(x_small[0]):
    axes[0].text(c, r, int(v), ha="center", va="center", fontsize=9)
axes[0].add_patch(plt.Rectangle((pick[1] - 0.5, pick[0] - 0.5), 3, 3, fill=False, ec="tab:red", lw=2))
axes[0].set_title("input 5×5, window of output (1, 2)")
axes[1].imshow(np.where(np.arange(9)[None, :] == p, 0.35, 0.0) + np.zeros((9, 9)), cmap="Reds", vmin=0, vmax=1)
for (r, c), v in np.ndenumerate(cols):
    axes[1].text(c, r, int(v), ha="center", va="center", fontsize=8)
axes[1].set_xticks(range(9)); axes[1].set_xlabel("output pixel (column of cols)")
axes[1].set_yticks(range(9), [f"tap ({u},{v})" for u in range(3) for v in range(3)], fontsize=7)
axes[1].set_title("cols = im2col(x): 9 taps × 9 windows")
axes[2].imshow(w_small.reshape(9, 1), cmap="coolwarm", vmin=-2, vmax=2)
for r, v in enumerate(w_small.ravel()):
    axes[2].text(0, r, int(v), ha="center", va="center", fontsize=8)
axes[2].set_xticks([]); axes[2].set_yticks([]); axes[2].set_title("weight row")
axes[3].imshow(out_small, cmap="coolwarm")
for (r, c), v in np.ndenumerate(out_small):
    axes[3].text(c, r, int(v), ha="center", va="center", fontsize=9)
axes[3].add_patch(plt.Rectangle((pick[1] - 0.5, pick[0] - 0.5), 1, 1, fill=False, ec="tab:red", lw=2))
axes[3].set_title("weight @ cols, 3×3")
for ax in (axes[0], axes[3]):
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# Output pixel `(1, 2)` is the dot product of the weight row with column 5 of `cols`,
# which holds exactly the window outlined on the input. With several channels and
# images the same product holds image by image. We compare against the library's
# `F.conv2d`:

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 7, 7))
w = rng.standard_normal((4, 3, 3, 3))
ours = np.stack([(w.reshape(4, -1) @ im2col_loops(x[n], 3)).reshape(4, 5, 5) for n in range(2)])
library = F.conv2d(ms.tensor(x), ms.tensor(w)).numpy()
print("im2col vs F.conv2d, max |difference|:", np.abs(ours - library).max())


# %% [markdown]
# ### The price of im2col, and how the library avoids it
#
# `cols` holds every input value `k·k` times: for a 3 × 3 convolution of a 256-channel,
# 64 × 64 float32 map that is 37.7 MB of copies of a 4.2 MB input. Look at `cols` row by
# row instead: the row of tap `(u, v)` is just the input *shifted* by `(u, v)`. So the
# same product splits into one small product per tap,
#
# $$y = \sum_{u,v} W_{uv}\; X_{uv}, \qquad W_{uv} = w[:, :, u, v] \in \mathbb{R}^{O\times C},\quad X_{uv} = \text{the input shifted by } (u, v),$$
#
# and each $X_{uv}$ can be a *slice* of the input rather than a copy. This is how the
# library's kernel (`minisegnet/kernels/conv.py`) works: `k·k` matrix products on
# shifted views, taps that would read only padding skipped, a batch split over CPU
# threads. Per tap, in a few lines:

# %%
def conv_by_taps(x, w):
    # one image (C, H, W), stride 1, no padding: sum over taps of (O, C) @ (C, H_out*W_out)
    O, C, k, _ = w.shape
    Ho, Wo = x.shape[1] - k + 1, x.shape[2] - k + 1
    y = np.zeros((O, Ho * Wo))
    for u in range(k):
        for v in range(k):
            y += w[:, :, u, v] @ x[:, u:u + Ho, v:v + Wo].reshape(C, -1)
    return y.reshape(O, Ho, Wo)

ours = np.stack([conv_by_taps(x[n], w) for n in range(2)])
print("per-tap products vs F.conv2d, max |difference|:", np.abs(ours - library).max())
C, k, Hm = 256, 3, 64
print(f"input {C * Hm * Hm * 4 / 1e6:.1f} MB, im2col buffer {C * k * k * Hm * Hm * 4 / 1e6:.1f} MB (float32)")

# %% [markdown]
# **Exercise Q5.** `exercises/q5_conv2d_im2col.py` asks for the full version: padding,
# stride and dilation, a whole batch, and `cols` built with one strided slice per
# kernel tap instead of a loop over output pixels. Run the cell after editing the file
# (it only reports, it never stops the notebook):

# %%
from minisegnet.grading import check
check("q5")

# %% [markdown]
# ### The backward pass of a convolution
#
# A convolution is linear in its input, $y = A x$, so its input gradient is
# $A^{\mathsf T} g$: it sends each output's gradient back to the pixels of its window.
# That transposed map is itself a convolution-like op, the **transposed convolution**
# (`F.conv_transpose2d`, the upsampling layer of FCN in lecture 3). The weight gradient
# correlates the input with the output gradient. `gradcheck` confirms both, here with
# stride, padding and dilation all in play:

# %%
xg = ms.randn(1, 2, 7, 7, dtype=ms.float64, requires_grad=True)
wg = ms.randn(3, 2, 3, 3, dtype=ms.float64, requires_grad=True)
bg = ms.randn(3, dtype=ms.float64, requires_grad=True)
print("gradcheck conv2d (stride 2, padding 2, dilation 2):",
      ms.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=2, dilation=2), xg, wg, bg))

# the input gradient IS a transposed convolution of the output gradient
xg.grad = None
y = F.conv2d(xg, wg, padding=1)
g = ms.randn(*y.shape, dtype=ms.float64)
(y * g).sum().backward()
print("x.grad == conv_transpose2d(grad_out, w):",
      np.allclose(xg.grad.numpy(), F.conv_transpose2d(g, wg.detach(), padding=1).numpy()))

# %% [markdown]
# ## 5. How fast?
#
# Python executes a loop iteration in about a microsecond or more; NumPy and the BLAS
# library behind `@` execute billions of multiply-adds per second. The whole game of
# writing kernels in Python is to keep loops *short* (over the 9 kernel taps, not over
# millions of pixels) and hand the long loops to compiled code. We time four versions
# of a 3 × 3 convolution on the same input: a naive loop over output pixels, im2col with a
# loop-built patch matrix, the per-tap products, and the library's kernel, and PyTorch's
# when it is installed. Every contestant gets **one CPU thread**, so that the comparison
# measures the code, not how many cores happen to be free (threads are restored after
# the timings).

# %%
from minisegnet.kernels import conv as conv_kernels
try:
    import torch
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
except ImportError:                 # PyTorch is optional: only the test oracle
    torch = None
try:
    from threadpoolctl import threadpool_limits
    blas_limit = threadpool_limits(limits=1)      # NumPy's BLAS on one thread too
except ImportError:
    blas_limit = None
conv_kernels.set_num_threads(1)

def best_time(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

def naive_conv(x, w):
    N, C, H, W = x.shape
    O, _, k, _ = w.shape
    y = np.empty((N, O, H - k + 1, W - k + 1))
    for n in range(N):
        for o in range(O):
            for i in range(H - k + 1):
                for j in range(W - k + 1):
                    y[n, o, i, j] = (x[n, :, i:i + k, j:j + k] * w[o]).sum()
    return y

N, C, O, S = 2, 8, 8, 24
xb = rng.standard_normal((N, C, S, S)).astype(np.float32)
wb = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
xt, wt = ms.tensor(xb), ms.tensor(wb)
candidates = {
    "naive loops": lambda: naive_conv(xb, wb),
    "im2col (loops) + matmul": lambda: [wb.reshape(O, -1) @ im2col_loops(xb[n], 3) for n in range(N)],
    "per-tap products": lambda: [conv_by_taps(xb[n], wb) for n in range(N)],
    "minisegnet F.conv2d": lambda: F.conv2d(xt, wt),
}
if torch is not None:
    xtorch, wtorch = torch.from_numpy(xb), torch.from_numpy(wb)
    candidates["PyTorch conv2d"] = lambda: torch.nn.functional.conv2d(xtorch, wtorch)

macs = N * O * C * 9 * (S - 2) ** 2             # valid convolution: (S - 2) x (S - 2) outputs, 9 C MACs each
timings = {name: best_time(fn, repeats=1 if name == "naive loops" else 5) for name, fn in candidates.items()}
for name, seconds in timings.items():
    print(f"{name:>26}: {1e3 * seconds:8.2f} ms   {2 * macs / seconds / 1e9:7.3f} GFLOP/s")

fig, ax = plt.subplots(figsize=(6.5, 2.8))
ax.barh(list(timings), [1e3 * t for t in timings.values()], color="tab:blue")
ax.set_xscale("log"); ax.set_xlabel("milliseconds (log scale)"); ax.invert_yaxis()
ax.set_title(f"3×3 conv, input {N}×{C}×{S}×{S}, {O} output channels")
plt.show()

# %% [markdown]
# On a layer the size of a real network's, only the vectorised versions remain
# practical. The library's kernel also computes the backward products in the same
# way, and the training runs of the next lectures are made of thousands of these calls.

# %%
N, C, O, S = 8, 32, 32, 32
xb = rng.standard_normal((N, C, S, S)).astype(np.float32)
wb = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
xt, wt = ms.tensor(xb), ms.tensor(wb)
xpad = np.pad(xb, ((0, 0), (0, 0), (1, 1), (1, 1)))      # padding 1: every contestant makes S x S outputs
big = {
    "per-tap products": lambda: np.stack([conv_by_taps(xpad[n], wb) for n in range(N)]),
    "minisegnet F.conv2d": lambda: F.conv2d(xt, wt, padding=1),
}
if torch is not None:
    xtorch, wtorch = torch.from_numpy(xb), torch.from_numpy(wb)
    big["PyTorch conv2d"] = lambda: torch.nn.functional.conv2d(xtorch, wtorch, padding=1)
for name, fn in big.items():
    outputs = np.prod(fn().shape)                  # N * O * H_out * W_out, counted from the result
    macs = outputs * C * 9                          # each output is a sum over C channels x 9 taps
    seconds = best_time(fn, repeats=5)
    print(f"{name:>22}: {1e3 * seconds:7.2f} ms   {2 * macs / seconds / 1e9:6.2f} GFLOP/s   "
          f"(output {tuple(fn().shape)})")

conv_kernels.set_num_threads(None)             # back to the defaults
if blas_limit is not None:
    blas_limit.restore_original_limits()
if torch is not None:
    torch.set_num_threads(torch_threads)

# %% [markdown]
# ## Summary
#
# * A `Tensor` is an array plus a record of the op that made it; `backward()` walks the
#   records in reverse and applies each op's `backward`, summing over paths.
# * A new op is a `Function` with `forward`/`backward` on raw arrays; `ms.gradcheck`
#   verifies the pair against finite differences.
# * A convolution is a matrix product on a patch matrix (im2col); splitting it by kernel
#   tap gives the same result without the `k·k`-fold copy, which is what the library
#   does. Its backward pass is a transposed convolution.
