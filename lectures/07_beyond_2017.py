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
# # Lecture 7 — Beyond 2017: real-time networks and transformers
#
# FCN, PSPNet and DeepLab (2015-2017) settled the core ideas: a fully convolutional
# encoder, a decoder back to full resolution, and context from pooling or dilation.
# Later work went in two directions, and the syllabus recommends five papers:
#
# | paper | year | what changes | why |
# |---|---|---|---|
# | ICNet | 2018 | a heavy network on a **low-resolution** copy, light branches on higher resolutions, fused in cascade | cost grows with pixels; context does not need them all |
# | BiSeNet | 2018 | two paths: a shallow, wide **detail** path at 1/8 and a deep, fast-downsampling **context** path, fused | resolution and receptive field come from different paths instead of one expensive one |
# | Fast-SCNN | 2019 | a shared "learning to downsample" stem, a light global feature extractor of **depthwise-separable** blocks, fusion | fewer multiply-adds per layer, computed once for both paths |
# | SETR | 2021 | the encoder is a pure **transformer** over 16 × 16 patches | self-attention relates every patch to every other one from the first layer |
# | SegFormer | 2021 | a **hierarchical** transformer with reduced-cost attention and a tiny all-MLP decoder | multi-scale features like a CNN, global context, affordable at high resolution |
#
# For each paper we build the key mechanism from the library's modules, as a small toy,
# and measure what it buys: multiply-adds with `models.profile` / `models.summary`,
# shapes, and receptive fields with autograd. Only one of the toys (the two-path
# BiSeNet) is also trained, briefly, to show that the two paths learn together; the toys
# are not the papers' networks and their scores say nothing about the papers' results.

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
# ## 1. Cost grows with pixels: ICNet's image cascade
#
# Every convolution's cost is proportional to the number of output pixels, so halving
# the input side divides the whole network's cost by four. PSPNet on our tiny backbone:

# %%
from minisegnet import models

psp = models.create("pspnet", num_classes=4)
for side in (128, 64, 32):
    print(f"PSPNet on a {side:>3}x{side:<3} image: {course.macs(psp, (1, 3, side, side)) / 1e6:8.1f} M multiply-adds")

# %% [markdown]
# ICNet (Zhao et al.) runs the heavy PSPNet-style network only on the image downsampled
# ×4, where context is cheap, and adds two *light* branches on the ×2-downsampled and
# full-resolution images that contribute edges and detail. A *cascade feature fusion*
# unit upsamples the coarser branch's features, projects both to a common width and adds
# them; auxiliary losses at each scale ("cascade label guidance") train every branch.
# A toy version, built from the library's pieces:

# %%
from minisegnet.models import ConvModule, PyramidPooling

class ToyICNet(nn.Module):
    def __init__(self, num_classes=4, width=32):
        super().__init__()
        self.heavy = models.resnet_tiny(output_stride=8)                 # on the 1/4 image
        self.context = PyramidPooling(128)
        self.project_heavy = ConvModule(256, width, 1)
        self.light_half = nn.Sequential(ConvModule(3, 16, 3, stride=2, padding=1),
                                        ConvModule(16, width, 3, stride=2, padding=1))
        self.light_full = nn.Sequential(ConvModule(3, 16, 3, stride=2, padding=1),
                                        ConvModule(16, 16, 3, stride=2, padding=1),
                                        ConvModule(16, width, 3, stride=2, padding=1))
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, img):
        H, W = img.shape[2:]
        quarter = F.interpolate(img, scale_factor=0.25, mode="bilinear", align_corners=False)
        half = F.interpolate(img, scale_factor=0.5, mode="bilinear", align_corners=False)
        coarse = self.project_heavy(self.context(self.heavy(quarter)[-1]))       # stride 32 of the image
        mid = self.light_half(half)                                               # stride 8
        fine = self.light_full(img)                                               # stride 8
        fused = F.interpolate(coarse, size=mid.shape[2:], mode="bilinear", align_corners=False) + mid + fine
        return F.interpolate(self.classify(fused), size=(H, W), mode="bilinear", align_corners=False)

icnet = ToyICNet().eval()
with ms.no_grad():
    out = icnet(ms.zeros(1, 3, 128, 128))
rows = models.profile(icnet, input_size=(1, 3, 128, 128))
by_branch = {}
for r in rows:
    branch = r["name"].split(".")[0]
    by_branch[branch] = by_branch.get(branch, 0) + r["macs"]
print("output:", out.shape)
for branch, m in by_branch.items():
    print(f"{branch:>15}: {m / 1e6:7.2f} M multiply-adds")
print(f"{'total':>15}: {sum(by_branch.values()) / 1e6:7.2f} M   vs PSPNet on the full image: "
      f"{course.macs(psp, (1, 3, 128, 128)) / 1e6:.1f} M")

# %% [markdown]
# ## 2. Depthwise-separable convolution: Fast-SCNN's building block
#
# A 3 × 3 convolution from `C` to `O` channels costs $C \cdot O \cdot 9$ multiply-adds per
# pixel: every output channel looks at every input channel through its own 3 × 3 filter.
# A **depthwise-separable** convolution factors this into
#
# 1. a *depthwise* 3 × 3 convolution (`groups=C`): one filter per channel, $C \cdot 9$;
# 2. a *pointwise* 1 × 1 convolution mixing the channels: $C \cdot O$.
#
# Fast-SCNN (Poudel et al.) builds almost its entire network from these (and from
# MobileNetV2's inverted bottlenecks, which are made of them), as do DeepLabV3+'s ASPP and
# decoder. The grouped convolution really is "each channel on its own":

# %%
x = ms.randn(2, 6, 9, 9)
w = ms.randn(6, 1, 3, 3)                                     # one 3x3 filter per channel
grouped = F.conv2d(x, w, padding=1, groups=6).numpy()
one_by_one = np.concatenate([F.conv2d(x[:, c:c + 1], w[c:c + 1], padding=1).numpy() for c in range(6)], axis=1)
print("groups=C == each channel convolved alone:", np.allclose(grouped, one_by_one, atol=1e-5))

print(f"\n{'C -> O':>12}{'3x3 conv':>14}{'separable':>14}{'ratio':>8}")
ratios = {}
for c in (32, 64, 128, 256):
    normal = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False))
    separable = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False))
    a, b = course.macs(normal, (1, c, 32, 32)), course.macs(separable, (1, c, 32, 32))
    ratios[c] = a / b
    print(f"{f'{c} -> {c}':>12}{a:>14,}{b:>14,}{a / b:>8.1f}")
print()
print(models.summary(nn.Sequential(models.DepthwiseSeparableConvModule(64, 64, 3, padding=1)), (1, 64, 32, 32)))


# %% [markdown]
# The saving is $\frac{9 C O}{9C + CO}$: 7.0 at 32 channels, 8.7 at 256, approaching 9 as
# channels grow (the table).
# Fast-SCNN's other idea is to compute the first, high-resolution layers **once**
# ("learning to downsample") and share them between its detail and context paths,
# which is where two-path networks otherwise spend their time.
#
# ## 3. Two paths: BiSeNet
#
# BiSeNet (Yu et al.) gives up on asking one path for both resolution and receptive field:
#
# * a **spatial path** of three stride-2 ConvModules: shallow (so cheap) but wide, it
#   keeps 1/8 resolution and the fine detail;
# * a **context path**: a backbone that downsamples fast to 1/32 (so cheap per layer)
#   with a global average pooling on top, and *attention refinement* modules that
#   reweigh its channels by a pooled summary;
# * a **feature fusion** module: concatenate the two, a ConvModule, and a channel
#   reweighting (a sigmoid of a pooled 1 × 1 projection).
#
# A small version built from the library's modules, checked for shapes, cost per path,
# and that the gradient reaches both paths; then a short training run on Shapes, two seeds.

# %%
class AttentionRefinement(nn.Module):
    # features * sigmoid(1x1 conv of their global average): a learned channel reweighting
    def __init__(self, channels):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.attend = ConvModule(channels, channels, 1, act=False)

    def forward(self, x):
        return x * self.attend(self.pool(x)).sigmoid()

class ToyBiSeNet(nn.Module):
    def __init__(self, num_classes=4, width=64):
        super().__init__()
        self.spatial = nn.Sequential(ConvModule(3, 32, 3, stride=2, padding=1),
                                     ConvModule(32, 32, 3, stride=2, padding=1),
                                     ConvModule(32, width, 3, stride=2, padding=1))
        self.backbone = models.resnet_tiny(output_stride=32)
        self.refine = AttentionRefinement(128)
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvModule(128, 128, 1))
        self.context_out = ConvModule(128, width, 3, padding=1)
        self.fuse = ConvModule(2 * width, width, 1)
        self.fuse_attention = AttentionRefinement(width)
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, img):
        detail = self.spatial(img)                                        # stride 8
        c4 = self.backbone(img)[-1]                                       # stride 32
        context = self.refine(c4) + self.global_context(c4)               # broadcast the global vector
        context = self.context_out(F.interpolate(context, size=detail.shape[2:], mode="bilinear",
                                                 align_corners=False))
        fused = self.fuse(F.cat([detail, context], dim=1))
        fused = fused + self.fuse_attention(fused)
        return F.interpolate(self.classify(fused), size=img.shape[2:], mode="bilinear", align_corners=False)

    def loss(self, img, target):
        return {"loss": F.cross_entropy(self(img), target, ignore_index=255)}

ms.manual_seed(0)
bisenet = ToyBiSeNet()
img = ms.randn(2, 3, 64, 64)
out = bisenet(img)
out.sum().backward()
print("output:", out.shape)
print("gradient reaches the spatial path:", np.abs(bisenet.spatial[0].conv.weight.grad.numpy()).sum() > 0,
      "| the context path:", np.abs(bisenet.backbone.conv1.weight.grad.numpy()).sum() > 0)
by_part = {}
for r in models.profile(bisenet, input_size=(1, 3, 64, 64)):
    part = r["name"].split(".")[0]
    by_part[part] = by_part.get(part, 0) + r["macs"]
print({k: f"{v / 1e6:.2f} M" for k, v in by_part.items()})
print(f"toy BiSeNet {sum(by_part.values()) / 1e6:.1f} M multiply-adds vs DeepLabV3 (OS 8) "
      f"{course.macs(models.create('deeplabv3', 4), (1, 3, 64, 64)) / 1e6:.1f} M on a 64x64 image")

# %%
from minisegnet import data, viz
from minisegnet.train import evaluate

SHAPES = dict(image_size=64, max_shapes=2, size_range=(0.25, 0.4))
STEPS, BATCH, SEEDS = 100, 8, (0, 1)
train_set = data.Shapes(length=STEPS * BATCH, split="train", seed=0, **SHAPES)
train_items = [train_set[i] for i in range(len(train_set))]
val_set = data.Shapes(length=64, split="val", seed=0, **SHAPES)
toys, mious = {}, []
for seed in SEEDS:
    ms.manual_seed(seed)
    toys[seed] = ToyBiSeNet()
    _, seconds = course.train(toys[seed], train_items, STEPS, batch_size=BATCH, lr=3e-3, seed=seed)
    scores = evaluate(toys[seed], data.DataLoader(val_set, batch_size=32), num_classes=4).compute()
    mious.append(scores["mIoU"])
    print(f"toy BiSeNet, seed {seed}, {STEPS} steps on 64x64 Shapes ({seconds:.0f} s): validation mIoU "
          f"{scores['mIoU']:.3f}, per class " + ", ".join(f"{c} {v:.2f}" for c, v in zip(val_set.classes, scores["IoU"])))
print(f"over seeds {SEEDS}: {course.spread(mious)}")
images, masks = next(iter(data.DataLoader(val_set, batch_size=4)))
with ms.no_grad():
    predictions = toys[0](images)
viz.plot_predictions(images, masks, predictions, class_names=val_set.classes, palette=val_set.palette,
                     max_images=4, title="toy BiSeNet, seed 0")


# %% [markdown]
# With this budget the toy network has learned the background and roughly where the
# objects are; which shape each object is, it has mostly not learned yet (the per-class
# IoUs above). That is a statement about a 100-step toy, not about BiSeNet: the point here
# is the structure, two paths of very different depth and resolution trained together
# through one loss, for a fraction of DeepLabV3's multiply-adds (printed above).
#
# ## 4. Self-attention: global context in one layer (SETR)
#
# A convolution mixes a pixel with its neighbours; its receptive field grows only with
# depth (lecture 4). **Self-attention** mixes every position with every other one, with
# weights that depend on the content. For a feature map flattened into `L = H·W` tokens
# `X` of width `C`:
#
# $$Q = X W_q,\quad K = X W_k,\quad V = X W_v,\qquad
#   \mathrm{Attention}(X) = \operatorname{softmax}\!\Bigl(\frac{Q K^{\mathsf T}}{\sqrt{d}}\Bigr)\, V .$$
#
# Row `i` of the `L × L` softmax says how much token `i` draws from each token `j`. SETR
# (Zheng et al.) cuts the image into 16 × 16 patches, embeds each patch as a token, runs
# a plain transformer encoder (layers of attention and MLPs) over the patch sequence, and
# reshapes the tokens back into a 1/16-resolution map for a convolutional decoder. Here
# is a self-attention layer written with the library's `matmul` and `softmax`: autograd
# differentiates it like any other op, and `gradcheck` agrees.

# %%
class SelfAttention2d(nn.Module):
    # single-head self-attention over the pixels of a (N, C, H, W) map, with a residual
    def __init__(self, channels, key_channels=16):
        super().__init__()
        self.query = nn.Linear(channels, key_channels, bias=False)
        self.key = nn.Linear(channels, key_channels, bias=False)
        self.value = nn.Linear(channels, channels, bias=False)
        self.scale = 1.0 / np.sqrt(key_channels)

    def attention(self, x):
        tokens = x.flatten(2).transpose(1, 2)                          # (N, L, C)
        scores = self.query(tokens) @ self.key(tokens).transpose(1, 2)   # (N, L, L)
        return F.softmax(scores * self.scale, dim=-1), tokens

    def forward(self, x):
        N, C, H, W = x.shape
        weights, tokens = self.attention(x)
        mixed = weights @ self.value(tokens)                           # (N, L, C)
        return x + mixed.transpose(1, 2).reshape(N, C, H, W)

attn = SelfAttention2d(8, key_channels=4).double()
x = ms.randn(2, 8, 3, 4, dtype=ms.float64, requires_grad=True)
print("output:", attn(x).shape, "| gradcheck:", ms.gradcheck(attn, x))

# %% [markdown]
# **How far does one layer see?** Back-propagate from one output pixel to the input: a
# 3 × 3 convolution reaches a 3 × 3 window, one self-attention layer reaches every pixel.
# And the weights are *content-dependent*: below, the query and key projections of a
# layer are set by hand to compare colours, so a pixel on one object attends to pixels of
# similar colour anywhere in the image.

# %%
shapes = data.Shapes(length=8, image_size=32, seed=3)
image, mask = shapes[0]
centred = image - image.mean(axis=(1, 2), keepdims=True)
colour = centred / np.linalg.norm(centred, axis=0, keepdims=True)       # each pixel's colour direction
x = ms.tensor(colour[None], dtype=ms.float64, requires_grad=True)

conv = nn.Conv2d(3, 3, 3, padding=1).double()
attn = SelfAttention2d(3, key_channels=3).double()
with ms.no_grad():                               # queries and keys: the colour directions, scaled
    attn.query.weight.data = 4.0 * np.eye(3)
    attn.key.weight.data = 4.0 * np.eye(3)

ys, xs = np.nonzero(mask > 0)
r, c = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])            # a pixel on an object
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
axes[0].imshow(image.transpose(1, 2, 0)); axes[0].plot(c, r, "w+", ms=12, mew=2); axes[0].set_title("image, query pixel +")
for ax, (name, layer) in zip(axes[1:3], (("3x3 conv", conv), ("attention", attn))):
    x.grad = None
    layer(x)[0, :, r, c].sum().backward()
    reach = np.abs(x.grad.numpy()[0]).sum(axis=0) > 0
    ax.imshow(reach, cmap="Greens", vmin=0, vmax=1); ax.set_title(f"{name}: {int(reach.sum())} pixels reach +")
with ms.no_grad():
    weights, _ = attn.attention(x)
im = axes[3].imshow(weights.numpy()[0, r * 32 + c].reshape(32, 32), cmap="magma")
axes[3].set_title("attention weights of +"); fig.colorbar(im, ax=axes[3], fraction=0.046)
for ax in axes:
    ax.set_xticks([]); ax.set_yticks([])
plt.show()

# %% [markdown]
# **Change this and re-run.** Set the factor `4.0` in the query and key weights to `1.0`.
# *Prediction:* the attention weights of + spread out over the whole image (the softmax of
# smaller scores is flatter), while the reach stays every pixel: the reach is a property of
# the layer's wiring, the weights of its content.
#
# The price is the `L × L` matrix: its size grows with the **square** of the number of
# pixels. That is why SETR attends over 16 × 16 patches rather than pixels, and why
# attention at high resolution needs a cheaper form:

# %%
for side in (16, 32, 64, 128):
    L = side * side
    print(f"{side:>3}x{side:<3} map: L = {L:>6} tokens, attention matrix {L * L:>12,} entries "
          f"({L * L * 4 / 2 ** 20:8.1f} MiB in float32)")


# %% [markdown]
# ## 5. SegFormer: efficient attention, a feature pyramid, an all-MLP decoder
#
# SegFormer (Xie et al.) keeps the transformer but makes it practical for segmentation:
#
# * a **hierarchical** encoder (Mix Transformer) with four stages at strides 4, 8, 16 and
#   32, like a CNN backbone, built by overlapping patch embeddings (strided convolutions);
# * **efficient self-attention**: keys and values come from the map *downsampled* by a
#   ratio `R` (a strided convolution in the paper), so the matrix is `L × L/R²`;
# * **Mix-FFN**: a 3 × 3 depthwise convolution inside each MLP block leaks position
#   information, so no positional encoding is needed and any image size works;
# * an **all-MLP decoder**: each stage's features go through a 1 × 1 projection to a
#   common width, are upsampled to stride 4, concatenated, fused by another 1 × 1
#   projection and classified.
#
# The efficient attention, with keys and values pooled by `R`:

# %%
class ReducedAttention2d(SelfAttention2d):
    # keys and values from the map average-pooled by `ratio`: an (L x L / ratio^2) attention
    def __init__(self, channels, key_channels=16, ratio=4):
        super().__init__(channels, key_channels)
        self.ratio = ratio

    def forward(self, x):
        N, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)                                   # (N, L, C)
        reduced = F.avg_pool2d(x, self.ratio).flatten(2).transpose(1, 2)        # (N, L / R^2, C)
        weights = F.softmax(self.query(tokens) @ self.key(reduced).transpose(1, 2) * self.scale, dim=-1)
        self.last_weights_shape = weights.shape
        return x + (weights @ self.value(reduced)).transpose(1, 2).reshape(N, C, H, W)

reduced = ReducedAttention2d(3, key_channels=3, ratio=4).double()
x.grad = None
reduced(x)[0, :, r, c].sum().backward()
print("attention matrix:", reduced.last_weights_shape, f"(full attention: (1, {32 * 32}, {32 * 32}))")
print("input pixels reaching one output pixel:", int((np.abs(x.grad.numpy()[0]).sum(axis=0) > 0).sum()), "of", 32 * 32)


# %% [markdown]
# Still global, sixteen times cheaper. Finally the all-MLP decoder, on the four feature
# maps of the library's ResNet (in SegFormer they come from the transformer stages):

# %%
class AllMLPDecoder(nn.Module):
    def __init__(self, in_channels=(16, 32, 64, 128), width=32, num_classes=4):
        super().__init__()
        self.project = nn.ModuleList([nn.Conv2d(c, width, 1) for c in in_channels])
        self.fuse = ConvModule(len(in_channels) * width, width, 1)
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, feats):
        size = feats[0].shape[2:]                                               # stride 4
        ups = [F.interpolate(p(f), size=size, mode="bilinear", align_corners=False)
               for p, f in zip(self.project, feats)]
        return self.classify(self.fuse(F.cat(ups, dim=1)))

class PyramidSegmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = models.resnet_tiny(output_stride=32)
        self.decoder = AllMLPDecoder()

    def forward(self, img):
        return F.interpolate(self.decoder(self.encoder(img)), size=img.shape[2:], mode="bilinear",
                             align_corners=False)

net = PyramidSegmenter().eval()
with ms.no_grad():
    feats = net.encoder(ms.randn(1, 3, 64, 64))
    print("encoder features:", [f.shape for f in feats])
    print("decoder output:", net.decoder(feats).shape, "(stride 4), then resized:", net(ms.randn(1, 3, 64, 64)).shape)
parts = {}
for row in models.profile(net, input_size=(1, 3, 64, 64)):
    part = row["name"].split(".")[0]
    parts[part] = parts.get(part, 0) + row["macs"]
print(f"decoder: {sum(p.numel() for p in net.decoder.parameters()):,} parameters, "
      f"{parts['decoder'] / 1e6:.2f} M multiply-adds (encoder {parts['encoder'] / 1e6:.2f} M)")

# %% [markdown]
# ## Summary
#
# * **Speed**: cost scales with pixels, so ICNet computes context on a small image and
#   detail on cheap branches; BiSeNet separates a shallow detail path from a fast
#   context path; Fast-SCNN shares the first layers and builds the rest from
#   depthwise-separable convolutions, 7 to 9 times cheaper than plain ones at 32 to
#   256 channels.
# * **Transformers**: self-attention gives every position a global, content-dependent
#   view in one layer, at a cost quadratic in the number of tokens; SETR attends over
#   patches, SegFormer reduces keys and values, keeps a multi-scale pyramid and decodes
#   with 1 × 1 projections only.
#
# ## References
#
# * H. Zhao, X. Qi, X. Shen, J. Shi, J. Jia. *ICNet for Real-Time Semantic Segmentation
#   on High-Resolution Images.* ECCV 2018. arXiv:1704.08545.
# * R. P. K. Poudel, S. Liwicki, R. Cipolla. *Fast-SCNN: Fast Semantic Segmentation
#   Network.* BMVC 2019. arXiv:1902.04502.
# * C. Yu, J. Wang, C. Peng, C. Gao, G. Yu, N. Sang. *BiSeNet: Bilateral Segmentation
#   Network for Real-time Semantic Segmentation.* ECCV 2018. arXiv:1808.00897.
# * S. Zheng et al. *Rethinking Semantic Segmentation from a Sequence-to-Sequence
#   Perspective with Transformers* (SETR). CVPR 2021. arXiv:2012.15840.
# * E. Xie, W. Wang, Z. Yu, A. Anandkumar, J. M. Alvarez, P. Luo. *SegFormer: Simple and
#   Efficient Design for Semantic Segmentation with Transformers.* NeurIPS 2021.
#   arXiv:2105.15203.
#
# The earlier lectures follow: J. Long, E. Shelhamer, T. Darrell, *Fully Convolutional
# Networks for Semantic Segmentation*, CVPR 2015, arXiv:1411.4038; H. Zhao et al.,
# *Pyramid Scene Parsing Network*, CVPR 2017, arXiv:1612.01105; L.-C. Chen et al.,
# *Rethinking Atrous Convolution for Semantic Image Segmentation* (DeepLabV3),
# arXiv:1706.05587, and *Encoder-Decoder with Atrous Separable Convolution for Semantic
# Image Segmentation* (DeepLabV3+), ECCV 2018, arXiv:1802.02611.
