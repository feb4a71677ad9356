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
# # Lecture 3 — FCN: making a classifier fully convolutional
#
# The Fully Convolutional Network (FCN, Long, Shelhamer and Darrell, 2015) was the first
# network trained end to end to label every pixel. Its recipe has three ingredients,
# and this lecture builds and checks each one:
#
# 1. **Classifier layers become convolutions.** A fully connected layer is a
#    convolution, so a classification network can slide over an image of any size and
#    output a grid of class scores instead of one vector.
# 2. **The grid is coarse.** After several strided layers, one output cell covers
#    `output_stride × output_stride` image pixels; we measure what that costs.
# 3. **Learnable upsampling.** A *transposed convolution*, initialised to bilinear
#    interpolation, brings the scores back to the image's size.
#
# Then we train a small FCN on the Shapes dataset and look at its predictions.

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
# ## 1. A fully connected layer is a 1 × 1 convolution
#
# A classifier typically ends with *global average pooling* (one `C`-vector per image)
# and a `Linear(C, K)` layer. Both steps are linear, so they can be swapped: applying the
# same `Linear` to **every pixel's** feature vector first gives `K` score maps, and
# averaging those maps gives the classifier's scores again. Applying one matrix to
# every pixel's channel vector is exactly a `1 × 1` convolution whose weight is the
# Linear weight reshaped to `(K, C, 1, 1)`.

# %%
features = ms.randn(2, 16, 5, 7)                   # (N, C, h, w): what a backbone outputs
fc = nn.Linear(16, 4)                              # classifier: C = 16 features -> K = 4 classes
class_scores = fc(features.mean(dim=(2, 3)))       # (N, K): pool, then classify

conv = nn.Conv2d(16, 4, kernel_size=1)
with ms.no_grad():                                 # copy the classifier into the 1x1 conv
    conv.weight.data = fc.weight.data.reshape(4, 16, 1, 1).copy()
    conv.bias.data = fc.bias.data.copy()
score_maps = conv(features)                        # (N, K, h, w): classify every pixel

per_pixel = fc(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)   # Linear on each pixel's vector
print("score maps:", score_maps.shape)
print("1x1 conv == Linear on every pixel:   ", np.allclose(score_maps.numpy(), per_pixel.numpy(), atol=1e-6))
print("mean of the maps == classifier scores:", np.allclose(score_maps.mean(dim=(2, 3)).numpy(), class_scores.numpy(), atol=1e-6))

# %% [markdown]
# Classic networks (AlexNet, VGG) instead *flatten* a fixed `C × 7 × 7` feature block
# into their first fully connected layer. That layer, too, is a convolution: with a
# `7 × 7` kernel. On a `7 × 7` map both give one output; on a larger map the convolution
# **slides**, producing the classifier's answer for every `7 × 7` window: a grid of
# predictions from one pass, with the overlapping work shared. This is the step that
# turned classification networks into dense predictors.

# %%
C, K, k = 8, 3, 7
fc6 = nn.Linear(C * k * k, K)
conv6 = nn.Conv2d(C, K, kernel_size=k)
with ms.no_grad():
    conv6.weight.data = fc6.weight.data.reshape(K, C, k, k).copy()
    conv6.bias.data = fc6.bias.data.copy()

small = ms.randn(1, C, 7, 7)
print("7x7 input:  Linear(flatten) == conv:", np.allclose(fc6(small.reshape(1, -1)).numpy(),
                                                     conv6(small).reshape(1, K).numpy(), atol=1e-5))
big = ms.randn(1, C, 12, 12)
grid = conv6(big)
window = big[:, :, 2:2 + k, 3:3 + k].reshape(1, -1)         # the window under output (2, 3)
print("12x12 input: conv output", grid.shape, "; cell (2, 3) == Linear on its window:",
      np.allclose(grid[:, :, 2, 3].numpy(), fc6(window).numpy(), atol=1e-5))

# %% [markdown]
# ## 2. Output stride: how coarse is the grid?
#
# The *output stride* (OS) is the number of image pixels per step of the feature grid. A
# classification backbone halves the resolution five times: OS 32. A 224 × 224 image
# gives 7 × 7 scores; our 64 × 64 images would give 2 × 2.
#
# How much does a coarse grid cost? Take the true mask, average its one-hot encoding over
# each `s × s` cell (the `K` class fractions of the cell), upsample those fractions
# bilinearly back to full size, and take the argmax. No network is involved. This is the
# best that **this particular read-out** can do: `K` numbers per cell followed by bilinear
# upsampling, which is how the `fcn` model below ends. It is *not* an upper bound for every
# network at that stride: a network may put many more than `K` channels in each cell (where
# the edge runs inside the cell, say), and a learned decoder can turn them into a sharper
# outline than bilinear interpolation of class fractions.

# %%
from minisegnet import data, viz
from minisegnet.metrics import ConfusionMatrix

big_shapes = data.Shapes(length=16, image_size=128, seed=1)
strides = (32, 16, 8, 4)

def best_at_stride(masks, s, K=4):
    onehot = ms.tensor((masks[:, None] == np.arange(K)[None, :, None, None]).astype(np.float32))
    cells = F.avg_pool2d(onehot, s)                                  # (N, K, H/s, W/s)
    up = F.interpolate(cells, size=masks.shape[1:], mode="bilinear", align_corners=False)
    return up.numpy().argmax(axis=1)

masks = np.stack([big_shapes[i][1] for i in range(len(big_shapes))])
bounds = {}
for s in strides:
    cm = ConfusionMatrix(4).update(best_at_stride(masks, s), masks)
    bounds[s] = cm.compute()["mIoU"]
    print(f"output stride {s:>2}: grid {128 // s:>3} x {128 // s:<3}  mIoU of the class-fraction read-out {bounds[s]:.3f}")

image, mask = big_shapes[0]
fig, axes = plt.subplots(1, len(strides) + 2, figsize=(15, 2.9))
axes[0].imshow(image.transpose(1, 2, 0)); axes[0].set_title("image 128×128")
axes[1].imshow(viz.colorize(mask, big_shapes.palette)); axes[1].set_title("ground truth")
for ax, s in zip(axes[2:], strides):
    ax.imshow(viz.colorize(best_at_stride(mask[None], s)[0], big_shapes.palette))
    ax.set_title(f"fractions at OS {s} ({128 // s}×{128 // s})")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# **Slider: output stride.** Move `stride` and watch a class's fractions per cell (left, the
# colour is the share of the cell's pixels that belong to the class) and the mask they
# give (right). *Predict first:* at which stride does the triangle's tip disappear? (Without
# ipywidgets, or when the notebook runs unattended, the figure is drawn for OS 16.)

# %%
def draw_stride(stride, klass=3):
    cells = F.avg_pool2d(ms.tensor((mask[None, None] == klass).astype(np.float32)), stride).numpy()[0, 0]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    axes[0].imshow(viz.colorize(mask, big_shapes.palette)); axes[0].set_title("ground truth")
    im = axes[1].imshow(cells, cmap="viridis", vmin=0, vmax=1)
    axes[1].set_title(f"'{big_shapes.classes[klass]}' fraction per {stride}×{stride} cell")
    fig.colorbar(im, ax=axes[1], fraction=0.046, label="share of the cell")
    axes[2].imshow(viz.colorize(best_at_stride(mask[None], stride)[0], big_shapes.palette))
    axes[2].set_title(f"argmax after bilinear upsampling, OS {stride}")
    for ax in axes:
        ax.axis("off")
    plt.show()

course.slider(draw_stride, [{"stride": 16, "klass": 3}], stride=[4, 8, 16, 32], klass=[1, 2, 3])

# %% [markdown]
# At OS 32 corners are rounded off and small shapes vanish; at OS 8 the outline is nearly
# right. The two families of fixes, used by every network in this course:
#
# * **keep the resolution** inside the backbone: replace the last strides by *dilated*
#   convolutions (DeepLab, lecture 5). The library's backbones do this with
#   `output_stride=8` or `16`, and its `fcn` model uses OS 8 by default;
# * **recover the resolution** in a decoder with skip connections from earlier,
#   finer layers (FCN-16s/8s below, DeepLabV3+ in lecture 5).
#
# ## 3. Transposed convolution: learnable upsampling
#
# A stride-`s` convolution *gathers*: every output pixel is a weighted sum over a window
# of the input. Its transpose *scatters*: every **input** pixel stamps a copy of the kernel,
# scaled by its value, onto the output, `s` pixels apart; where stamps overlap they add.
# Below, each of four input pixels stamps the same 3 × 3 kernel with stride 2, and the
# output is the sum of the stamps.

# %%
kernel = ms.tensor([[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]])     # (C_in, C_out, 3, 3)
values = np.array([[1.0, 2.0], [3.0, -1.0]])
fig, axes = plt.subplots(1, 5, figsize=(14, 3))
total = np.zeros((5, 5))
for ax, (r, c) in zip(axes, [(0, 0), (0, 1), (1, 0), (1, 1)]):
    single = np.zeros((1, 1, 2, 2)); single[0, 0, r, c] = values[r, c]
    stamp = F.conv_transpose2d(ms.tensor(single, dtype=ms.float32), kernel, stride=2).numpy()[0, 0]
    total += stamp
    ax.imshow(stamp, cmap="coolwarm", vmin=-8, vmax=8)
    ax.set_title(f"input ({r},{c}) = {values[r, c]:g}: its stamp")
full = F.conv_transpose2d(ms.tensor(values[None, None], dtype=ms.float32), kernel, stride=2).numpy()[0, 0]
axes[4].imshow(full, cmap="coolwarm", vmin=-8, vmax=8); axes[4].set_title("conv_transpose2d: the sum")
for ax in axes:
    for (r, c), v in np.ndenumerate(ax.images[0].get_array()):
        ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=8)
    ax.set_xticks([]); ax.set_yticks([])
plt.show()
print("sum of the stamps == conv_transpose2d:", np.allclose(total, full))

# %% [markdown]
# Along each axis the output size is $H_{out} = (H - 1)\,s - 2p + k + \text{output\_padding}$,
# the inverse of the convolution's size formula. The name comes from linear algebra: if
# a convolution is the matrix $A$ ($y = Ax$), the transposed convolution with the same
# weight is $A^{\mathsf T}$. So for any `x` and `y`, $\langle A x, y\rangle = \langle x, A^{\mathsf T} y\rangle$,
# which we can check numerically. (This is also why it is the backward pass of a
# convolution, lecture 2.)

# %%
w = ms.randn(5, 3, 4, 4, dtype=ms.float64)               # conv: 3 -> 5 channels, k=4, s=2, p=1
x = ms.randn(2, 3, 16, 16, dtype=ms.float64)
y = ms.randn(2, 5, 8, 8, dtype=ms.float64)
Ax = F.conv2d(x, w, stride=2, padding=1)
ATy = F.conv_transpose2d(y, w, stride=2, padding=1)      # the same weight, read as (C_in=5, C_out=3)
print("A x:", Ax.shape, "  A^T y:", ATy.shape)
print("<A x, y> =", float((Ax * y).sum().item()), "   <x, A^T y> =", float((x * ATy).sum().item()))
for k, s, p in [(4, 2, 1), (16, 8, 4), (3, 2, 1)]:
    h = F.conv_transpose2d(ms.randn(1, 1, 8, 8), ms.randn(1, 1, k, k), stride=s, padding=p).shape[2]
    print(f"k={k:>2}, s={s}, p={p}: 8 -> {h}  (formula {(8 - 1) * s - 2 * p + k})")

# %% [markdown]
# **Exercise Q10.** Write the scatter yourself in `exercises/q10_transposed_conv.py`
# (stamp, add, crop the padding) and check it here:

# %%
from minisegnet.grading import check
check("q10")

# %% [markdown]
# ### Starting as bilinear interpolation
#
# FCN initialises its upsampling layers so that they *begin* as plain bilinear
# interpolation, and training may then refine them. The right kernel for factor `s` is
# `k = 2s` wide, a "tent" that falls off linearly with distance, and each channel maps
# only to itself. `nn.init.bilinear_` writes it. We compare the result with
# `F.interpolate(..., mode="bilinear", align_corners=False)`:

# %%
image, mask = big_shapes[3]
low = F.avg_pool2d(ms.tensor(image[None]), 8)               # a 16x16 version of a 128x128 image
results = {}
fig, axes = plt.subplots(2, 4, figsize=(13, 6.4))
for row, s in enumerate((2, 8)):
    up = nn.ConvTranspose2d(3, 3, kernel_size=2 * s, stride=s, padding=s // 2, bias=False)
    nn.init.bilinear_(up.weight)
    with ms.no_grad():
        learned = up(low).numpy()[0]
    reference = F.interpolate(low, scale_factor=s, mode="bilinear", align_corners=False).numpy()[0]
    diff = np.abs(learned - reference).max(axis=0)
    b = s // 2
    results[s] = (diff.max(), diff[b:-b, b:-b].max())
    axes[row, 0].imshow(up.weight.numpy()[0, 0], cmap="viridis")
    axes[row, 0].set_title(f"bilinear_ kernel, k={2 * s} (channel 0 -> 0)")
    axes[row, 1].imshow(np.clip(learned.transpose(1, 2, 0), 0, 1)); axes[row, 1].set_title(f"ConvTranspose2d, x{s}")
    axes[row, 2].imshow(np.clip(reference.transpose(1, 2, 0), 0, 1)); axes[row, 2].set_title(f"F.interpolate, x{s}")
    im = axes[row, 3].imshow(diff, cmap="magma"); axes[row, 3].set_title("|difference|")
    fig.colorbar(im, ax=axes[row, 3], fraction=0.046)
for ax in axes.ravel():
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()
plt.show()
for s, (everywhere, inside) in results.items():
    print(f"x{s}: max |difference| {everywhere:.3f} overall, {inside:.1e} away from a {s // 2}-pixel border")

# %% [markdown]
# Away from the border the two are **identical** (up to float32 rounding). On a border of
# `s/2` pixels they differ:
# the transposed convolution treats the outside of the image as zeros (the image
# fades towards its edge), while `F.interpolate` repeats the edge pixel. Networks in this
# library therefore use `F.interpolate` for their fixed final upsampling, and keep
# transposed convolutions where the upsampling should be learned (FCN-8s).
#
# **Exercise Q6.** Bilinear resizing by hand, with both `align_corners` conventions:

# %%
check("q6")

# %% [markdown]
# **The backward pass of bilinear resizing.** Resizing is linear in the input, `y = R x`,
# where each output pixel is a weighted sum of (at most) four input pixels. Its gradient is
# therefore `R^T g`: each output pixel's gradient is split back onto the same four input
# pixels with the same four weights, and the shares that land on one input pixel add up.
# This is the same *scatter* as the transposed convolution above, and it is what every
# FCN, PSPNet and DeepLab sends back through its final resize. **Exercise Q12**
# (`exercises/q12_bilinear_backward.py`) asks you to write that scatter in NumPy; the
# grader compares it with the library's backward and with `gradcheck`:

# %%
if (course.ROOT / "exercises" / "q12_bilinear_backward.py").is_file():
    check("q12")
else:
    print("exercises/q12_bilinear_backward.py is not in this checkout yet")

# %% [markdown]
# ## 4. FCN-32s, -16s, -8s and the library's FCNs
#
# The original FCN-32s upsamples the stride-32 scores in one step of 32. FCN-16s first
# upsamples them ×2, **adds** scores computed from the stride-16 features (a 1 × 1
# convolution of `pool4`), and upsamples the sum ×16; FCN-8s repeats this once more with
# `pool3`. The deep layers say *what*; the shallow ones say *where* exactly. The library
# has both styles:
#
# * `models.create("fcn8s", K)`: a small VGG with exactly this skip architecture and
#   bilinear-initialised transposed convolutions;
# * `models.create("fcn", K)`: a ResNet made dilated to output stride 8 with an
#   `FCNHead` (two 3 × 3 ConvModules, a concatenation with the input, and a 1 × 1
#   classifier), then a bilinear resize to the image. This is how modern toolboxes
#   build "FCN", and it is the baseline of the next lectures.

# %%
from minisegnet import models

fcn8s = models.create("fcn8s", num_classes=4)
fcn = models.create("fcn", num_classes=4).eval()
print(fcn.decode_head)
for name, model in (("fcn8s", fcn8s), ("fcn", fcn)):
    feats = model.backbone(ms.zeros(1, 3, 64, 64))
    params = sum(p.numel() for p in model.parameters())
    print(f"{name:>6}: {params:,} parameters; backbone feature sizes",
          [tuple(f.shape[2:]) for f in feats], "; strides", model.backbone.strides)

# %% [markdown]
# The whole forward pass of `fcn` is three lines: the backbone returns its multi-level
# features, the head decodes the deepest one (`c4`), and a bilinear resize brings the
# scores to the image's size. Written out by hand it gives exactly what the model gives:

# %%
x = ms.randn(2, 3, 64, 64)
with ms.no_grad():
    c1, c2, c3, c4 = fcn.backbone(x)                    # strides 4, 8, 8, 8 (dilated)
    scores = fcn.decode_head([c1, c2, c3, c4])          # FCNHead reads c4: (N, K, 8, 8)
    logits = F.interpolate(scores, size=x.shape[2:], mode="bilinear", align_corners=False)
    print("c4", c4.shape, "-> head", scores.shape, "-> resized", logits.shape)
    print("same as fcn(x):", np.allclose(logits.numpy(), fcn(x).numpy(), atol=1e-6))

# %% [markdown]
# ### Another way up: SegNet remembers where the maxima were
#
# FCN-8s *learns* its upsampling: transposed convolutions that start as bilinear
# interpolation, with skip scores from `pool4` and `pool3` to put the boundaries back; the
# library's ResNet `fcn` resizes with a fixed bilinear `F.interpolate`. **SegNet**
# (Badrinarayanan, Kendall and Cipolla, 2017) takes a third way. Every 2 × 2 max pool of
# its encoder also returns *where* in its window each maximum was
# (`F.max_pool2d(..., return_indices=True)`), and the mirrored decoder puts each value
# back at exactly that position, zeros elsewhere (`F.max_unpool2d`, or the layer
# `nn.MaxUnpool2d`); 3 × 3 convolutions then fill in the sparse map. The unpooling has no
# parameters and nothing to learn; what it keeps is one integer position per window.
# Here is a feature map that is 1 on the objects of the image above and 0 elsewhere,
# pooled twice (128 → 32) and brought back up three ways (the lower row: the red box):

# %%
x = ms.tensor((mask > 0).astype(np.float32)[None, None])        # a feature map: 1 on the objects above, 0 elsewhere
half, where_half = F.max_pool2d(x, 2, return_indices=True)        # (1, 1, 64, 64), indices into 128x128
quarter, where_quarter = F.max_pool2d(half, 2, return_indices=True)
unpooled = F.max_unpool2d(F.max_unpool2d(quarter, where_quarter, 2), where_half, 2)     # back to 128x128
bilinear = F.interpolate(quarter, scale_factor=4, mode="bilinear", align_corners=False)
up4 = nn.ConvTranspose2d(1, 1, kernel_size=8, stride=4, padding=2, bias=False)
nn.init.bilinear_(up4.weight)
with ms.no_grad():
    transposed = up4(quarter)
panels = [("feature map 128x128", x), ("max-pooled twice, 32x32", quarter),
          ("max_unpool2d twice (indices)", unpooled), ("F.interpolate, bilinear", bilinear),
          ("ConvTranspose2d, bilinear start", transposed)]
ys, xs = np.nonzero(np.abs(np.diff(mask, axis=0)) > 0)                 # a 24x24 crop on an object's boundary
top, left = (int(np.clip(v[len(v) // 2] - 12, 0, 104)) for v in (ys, xs))
fig, axes = plt.subplots(2, 5, figsize=(14, 6.2))
for j, (title, t) in enumerate(panels):
    picture = t.numpy()[0, 0]
    axes[0, j].imshow(picture, cmap="gray", vmin=0, vmax=1); axes[0, j].set_title(title, fontsize=9)
    crop = picture[top:top + 24, left:left + 24] if picture.shape[0] == 128 else \
        picture[top // 4:top // 4 + 6, left // 4:left // 4 + 6]
    axes[1, j].imshow(crop, cmap="gray", vmin=0, vmax=1); axes[1, j].set_title("the boxed crop", fontsize=9)
    size = 24 if picture.shape[0] == 128 else 6
    corner = (left, top) if picture.shape[0] == 128 else (left // 4, top // 4)
    axes[0, j].add_patch(plt.Rectangle((corner[0] - 0.5, corner[1] - 0.5), size, size, fill=False, ec="red"))
for ax in axes.ravel():
    ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()
plt.show()
kept = unpooled.numpy() != 0
print(f"unpooled: {kept.mean():.1%} of the values are non-zero (at most one per 4x4 window: 6.25 %), each equal to the map "
      f"at that position: {np.array_equal(unpooled.numpy()[kept], x.numpy()[kept])}")
print("max-pooling the unpooled map gives the pooled map back:",
      np.array_equal(F.max_pool2d(F.max_pool2d(unpooled, 2), 2).numpy(), quarter.numpy()))

# %% [markdown]
# The unpooled map is sparse but *exact*: where a value comes back, it comes back at the
# pixel it came from, so no dot lands outside an object, while both interpolations smear
# the boundary over several pixels.
# The price is that everything else is zero until the decoder's convolutions fill it in,
# and the encoder must keep its indices until the decoder needs them. The library's
# small SegNet, `models.create("segnet", K)`, has three such stages (16, 32, 64 channels,
# output stride 8); each unpooling is told the size before its pool, so odd image sizes
# come back exactly:

# %%
segnet = models.create("segnet", num_classes=4).eval()
print(f"segnet: {course.n_params(segnet):,} parameters, of which the unpooling layers hold "
      f"{course.n_params(segnet.decode_head.unpool)}")
with ms.no_grad():
    print("a 37x45 image ->", segnet(ms.zeros(1, 3, 37, 45)).shape)

# %% [markdown]
# ## 5. The loss: cross-entropy at every pixel
#
# Training compares the score maps `(N, K, H, W)` with the label map `(N, H, W)` by the
# softmax cross-entropy **of each pixel**, averaged over pixels:
# $\;\ell = -\frac{1}{|P|}\sum_{p \in P} \log \operatorname{softmax}(z_p)_{y_p}$.
# Pixels labelled with the *ignore index* (255, "unknown" in datasets like Pascal VOC) are
# left out of the sum and of the count `|P|`. `F.cross_entropy` implements this; a
# small case by hand:

# %%
logits = ms.tensor(np.random.default_rng(0).standard_normal((1, 3, 2, 2)), dtype=ms.float64)
target = ms.tensor([[[0, 2], [255, 1]]])                           # one pixel ignored
z = logits.numpy()[0]
log_probs = z - np.log(np.exp(z).sum(axis=0, keepdims=True))
by_hand = -np.mean([log_probs[t, r, c] for (r, c), t in np.ndenumerate(target.numpy()[0]) if t != 255])
print("F.cross_entropy:", F.cross_entropy(logits, target, ignore_index=255).item(), "  by hand:", by_hand)

# %% [markdown]
# **Exercise Q9.** A numerically stable pixel-wise cross-entropy with an ignore index:

# %%
check("q9")

# %% [markdown]
# ## 6. Training FCN-8s, transposed convolutions included
#
# Now the network of the syllabus: `fcn8s`, whose three upsampling layers are transposed
# convolutions that *start* as bilinear interpolation and are trained with the rest. We
# train on 64 × 64 images, so that pool3, pool4 and pool5 are 8 × 8, 4 × 4 and 2 × 2 maps
# (on 32 × 32 images pool5 would be a single pixel). A training step is the loop every
# framework runs, written once in `lectures/_course.py` (`course.train`): forward pass and
# loss, `backward()`, an Adam step, and the "poly" decay $lr = lr_0 (1 - t/T)^{0.9}$.
#
# Two questions, each answered over two seeds so that the difference can be compared with
# the run-to-run spread:
#
# 1. Does the bilinear start matter? The same network with its three transposed
#    convolutions drawn at random instead (the default initialisation of a convolution
#    layer, Kaiming-uniform as in PyTorch).
# 2. What do the skips add? We read the trained network out after each stage of its
#    decoder: the stride-32 scores alone, after adding pool4's scores, after adding pool3's.

# %%
from minisegnet.train import evaluate

SHAPES = dict(image_size=64, max_shapes=2, size_range=(0.25, 0.4))
STEPS, BATCH, SEEDS = 150, 8, (0, 1)
train_set = data.Shapes(length=STEPS * BATCH, split="train", seed=0, **SHAPES)
train_items = [train_set[i] for i in range(len(train_set))]    # generated once, shared by every run
val_set = data.Shapes(length=64, split="val", seed=0, **SHAPES)
val_loader = data.DataLoader(val_set, batch_size=32)
UPSAMPLERS = ("upscore2", "upscore_pool4", "upscore8")

def make_fcn8s(seed, init):
    ms.manual_seed(seed)
    model = models.create("fcn8s", num_classes=4)
    if init == "random":
        for name in UPSAMPLERS:
            nn.init.kaiming_uniform_(getattr(model.decode_head, name).weight, a=5 ** 0.5)
    return model

runs = {}
for init in ("bilinear", "random"):
    for seed in SEEDS:
        model = make_fcn8s(seed, init)
        losses, seconds = course.train(model, train_items, STEPS, batch_size=BATCH, lr=3e-3, seed=seed)
        runs[init, seed] = dict(model=model, losses=losses, seconds=seconds,
                                scores=evaluate(model, val_loader, num_classes=4).compute())
for init in ("bilinear", "random"):
    mious = [runs[init, seed]["scores"]["mIoU"] for seed in SEEDS]
    seconds = np.mean([runs[init, seed]["seconds"] for seed in SEEDS])
    print(f"{init:>8} start: validation mIoU {course.spread(mious)}   ({STEPS} steps, {seconds:.0f} s a run)")

# %%
fig, ax = plt.subplots(figsize=(7.5, 3.2))
for (init, seed), run in runs.items():
    smooth = np.convolve(run["losses"], np.ones(10) / 10, mode="valid")
    ax.plot(smooth, color="tab:blue" if init == "bilinear" else "tab:red", ls="-" if seed == 0 else "--",
            label=f"{init} start, seed {seed}")
ax.set_xlabel("step"); ax.set_ylabel("loss (mean of 10 steps)"); ax.set_yscale("log")
ax.set_title("FCN-8s training loss")
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
fig.tight_layout()
plt.show()

# %% [markdown]
# What did training do to the upsampling kernels? Below, the last layer (`upscore8`, 16 × 16,
# stride 8) of the bilinear-start run: the kernel it started from, the learned kernel of
# two classes, and the change. The printed numbers give, for each of the three layers, the
# size of the change relative to the start, and how much weight now leaks *between*
# classes (the start maps each class only to itself).

# %%
model = runs["bilinear", 0]["model"]
start_kernel = nn.init.bilinear_kernel(16)
for name in UPSAMPLERS:
    w = getattr(model.decode_head, name).weight.numpy()                  # (K_in, K_out, k, k)
    w0 = np.zeros_like(w)
    for k in range(w.shape[0]):
        w0[k, k] = nn.init.bilinear_kernel(w.shape[-1])
    off = np.abs(w - w * np.eye(w.shape[0])[:, :, None, None]).sum() / np.abs(w).sum()
    print(f"{name:>14}: |learned - bilinear| / |bilinear| = {np.linalg.norm(w - w0) / np.linalg.norm(w0):.3f}, "
          f"share of |weight| between different classes {off:.3f}")

w = model.decode_head.upscore8.weight.numpy()
panels = [("bilinear start", start_kernel), ("learned: background -> background", w[0, 0]),
          ("learned: circle -> circle", w[1, 1]), ("learned - start (circle)", w[1, 1] - start_kernel)]
fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
for ax, (name, kernel) in zip(axes, panels):
    if name.startswith("learned -"):                         # a signed change: white is zero
        limit = np.abs(kernel).max()
        im = ax.imshow(kernel, cmap="coolwarm", vmin=-limit, vmax=limit)
    else:
        im = ax.imshow(kernel, cmap="viridis")
    ax.set_title(name, fontsize=9); ax.set_xticks([]); ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# The learned kernels still look like the tent they started from; the change (right: compare
# its colour bar with the kernels') is organised in blocks of the stride, 8 pixels: each
# output pixel of this stride-8 layer takes tap `u` from its nearest input pixel and tap
# `u + 8` from the next one, so training moves the central 8 × 8 block (the near taps) and
# the outer ring (the far taps) separately.
#
# And what do the skips add? The trained network read out at each depth of its decoder (each
# read-out resized bilinearly to the image for the picture and the score):

# %%
head = model.decode_head
images, masks = next(iter(data.DataLoader(val_set, batch_size=64)))
with ms.no_grad():
    pool3, pool4, pool5 = model.backbone(images)[-3:]
    s32 = head.cls_seg(head.fc(pool5))                                            # stride 32
    s16 = head.score_pool4(pool4) + head._align(head.upscore2(s32), pool4)        # + pool4: stride 16
    s8 = head.score_pool3(pool3) + head._align(head.upscore_pool4(s16), pool3)    # + pool3: stride 8
    print("upscore8(stride-8 scores) == the model's output:",
          np.allclose(head.upscore8(s8).numpy(), model(images).numpy(), atol=1e-5))
readouts = {}
for name, scores in (("32s", s32), ("16s", s16), ("8s", s8)):
    up = F.interpolate(scores, size=(64, 64), mode="bilinear", align_corners=False).numpy().argmax(axis=1)
    readouts[name] = up
    miou = ConfusionMatrix(4).update(up, masks.numpy()).compute()["mIoU"]
    print(f"read out at {name}: {tuple(scores.shape[2:])} scores, validation mIoU {miou:.3f}")
readouts["8s + upscore8"] = model.predict(images).numpy()
miou = ConfusionMatrix(4).update(readouts["8s + upscore8"], masks.numpy()).compute()["mIoU"]
print(f"the model itself (stride-8 scores through the learned upscore8): validation mIoU {miou:.3f}")

fig, axes = plt.subplots(3, 2 + len(readouts), figsize=(2.1 * (2 + len(readouts)), 6.6))
for row in range(3):
    axes[row, 0].imshow(images.numpy()[row].transpose(1, 2, 0)); axes[row, 0].set_title("image")
    axes[row, 1].imshow(viz.colorize(masks.numpy()[row], val_set.palette)); axes[row, 1].set_title("truth")
    for col, (name, pred) in enumerate(readouts.items()):
        axes[row, 2 + col].imshow(viz.colorize(pred[row], val_set.palette)); axes[row, 2 + col].set_title(name)
for ax in axes.ravel():
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# The stride-32 read-out has only 2 × 2 cells for a 64 × 64 image, so it can place a blob
# but not draw it; each skip adds a finer grid, and the outline sharpens. Compare the last
# two numbers too: after 150 steps the learned ×8 upsampling is no better than resizing
# the same stride-8 scores bilinearly (its kernels have moved only a little from the
# bilinear start, see above); with a bilinear start, learning the upsampling is an
# option the network may take, not a gain it is guaranteed. The bilinear start does pay
# off early, though: compare the two starts' mIoU with their spread over seeds. (The skip
# layers start at zero, so at step 0 all four read-outs are the same FCN-32s; the
# network *learned* to use the finer features.) What remains: edges still follow the
# stride-8 grid (corners of squares and triangle tips are rounded), and with 150 steps
# the classes of some objects are still confused, because telling a circle from a square
# needs the shape of the whole object, a context of many pixels. The next two lectures
# are about giving every pixel more context: pooling at several scales (PSPNet) and
# dilated convolutions (DeepLab).
#
# **Change this and re-run.** Set `SEEDS = (0, 1, 2)` and compare the two starts again:
# *prediction:* the gap between the bilinear and the random start shrinks relative to the
# seed spread as you raise `STEPS`, because the transposed convolutions can learn to
# upsample from any start; the bilinear start mostly buys a faster beginning.
#
# ## Summary
#
# * `Linear` on a pooled vector == `1 × 1` convolution at every pixel, then pooling; a
#   flattened `k × k` block into `Linear` == a `k × k` convolution. Replacing them makes a
#   classifier *fully convolutional*: any input size, a grid of scores out.
# * The grid has the backbone's output stride; read out as class fractions and upsampled
#   bilinearly, OS 32 loses the fine structure, OS 8 mostly keeps it.
# * A transposed convolution scatters kernel stamps; it is the transpose (adjoint) of a
#   convolution, and with the bilinear kernel it equals bilinear upsampling away from the
#   border.
# * Training minimises the per-pixel cross-entropy, skipping ignored pixels. FCN-8s trains
#   its transposed convolutions from the bilinear start; the skips from pool4 and pool3
#   sharpen what the stride-32 scores can only place.
