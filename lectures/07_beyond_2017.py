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
# | BiSeNet (V2) | 2018 (2021) | two branches: a shallow, wide **detail** branch at 1/8 and a deep, narrow **semantic** branch down to 1/32, fused | resolution and receptive field come from different branches instead of one expensive one |
# | Fast-SCNN | 2019 | a shared "learning to downsample" stem, a light global feature extractor of **depthwise-separable** blocks, fusion | fewer multiply-adds per layer, and the first layers computed once for both branches |
# | SETR | 2021 | the encoder is a pure **transformer** over 16 × 16 patches | self-attention relates every patch to every other one from the first layer |
# | SegFormer | 2021 | a **hierarchical** transformer with reduced-cost attention and a tiny all-MLP decoder | multi-scale features like a CNN, global context, affordable at high resolution |
#
# Three of them are in the library's model zoo, written down to the kernels:
# `models.create("fast_scnn" | "bisenetv2" | "segformer_b0", num_classes, width=...)`
# (`minisegnet/models/fast_scnn.py`, `bisenetv2.py`, `segformer.py`). This lecture draws
# each one from the model itself, reads their sizes from the results file, and trains
# all three next to FCN on the context strips of lecture 4. ICNet and SETR are explained
# in words.

# %%
# %matplotlib inline
import pathlib, sys

# Find the repository (the folder holding minisegnet/) so the notebook runs without installing,
# and lectures/ for _course.py, the code the lectures share (training loop, MAC counts, diagrams).
for folder in (pathlib.Path.cwd().resolve(), *pathlib.Path.cwd().resolve().parents):
    if (folder / "minisegnet" / "__init__.py").is_file():
        for path in (folder, folder / "lectures"):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
        break

import numpy as np
import matplotlib.pyplot as plt
from IPython.display import Markdown, display
import minisegnet as ms
import minisegnet.functional as F
from minisegnet import data, models, nn, viz
import _course as course

ms.manual_seed(0)                      # every random draw of the library starts from here
plt.rcParams.update({"figure.dpi": 80, "image.interpolation": "nearest", "axes.titlesize": 10})
NEW = ("fast_scnn", "bisenetv2", "segformer_b0")

# %% [markdown]
# ## 1. Cost grows with pixels: ICNet's image cascade
#
# Every convolution's cost is proportional to the number of output pixels, so halving
# the input side divides the whole network's cost by four. PSPNet on our tiny backbone:

# %%
psp = models.create("pspnet", num_classes=5)
for side in (128, 64, 32):
    print(f"PSPNet on a {side:>3}x{side:<3} image: {course.macs(psp, (1, 3, side, side)) / 1e6:8.1f} M multiply-adds")

# %% [markdown]
# **ICNet** (Zhao et al.) takes the hint. It runs the heavy PSPNet-style network only on
# the image downsampled ×4, where context is cheap, and adds two *light* branches on the
# ×2-downsampled and the full-resolution image that contribute edges and detail. A
# *cascade feature fusion* unit upsamples the coarser branch, projects both branches to a
# common width and adds them; auxiliary losses at each scale ("cascade label guidance")
# train every branch. ICNet is not in the zoo; the three networks below take the same
# idea further: spend the deep layers on a small map and keep a cheap path at high
# resolution.
#
# ## 2. Depthwise-separable convolution: the building block
#
# A 3 × 3 convolution from `C` to `O` channels costs $C \cdot O \cdot 9$ multiply-adds per
# pixel: every output channel looks at every input channel through its own 3 × 3 filter.
# A **depthwise-separable** convolution factors this into a *depthwise* 3 × 3 convolution
# (`groups=C`: one filter per channel, $C \cdot 9$) and a *pointwise* 1 × 1 convolution
# mixing the channels ($C \cdot O$). Fast-SCNN is built almost entirely from it,
# BiSeNetV2's semantic branch and SegFormer's Mix-FFN use depthwise convolutions too. The
# grouped convolution really is "each channel on its own", and the saving is
# $9CO / (9C + CO)$:

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
    separable = models.DepthwiseSeparableConvModule(c, c, 3, padding=1)
    a, b = course.macs(normal, (1, c, 32, 32)), course.macs(separable, (1, c, 32, 32))
    ratios[c] = a / b
    print(f"{f'{c} -> {c}':>12}{a:>14,}{b:>14,}{a / b:>8.1f}")

# %% [markdown]
# The saving has a catch on a CPU. An ordinary convolution is fast because it is one big
# matrix product per image (a contraction over $9C$ values per output), and matrix
# products run near the processor's peak. A depthwise convolution has only 9 products per
# output pixel: as matrix products it becomes thousands of tiny ones. So on large maps
# minisegnet computes it the way you would by hand
# (`minisegnet/kernels/depthwise.py`): pad the image, and for each of the 9 taps add a
# shifted copy of it, times that tap's weight. Nine passes over the image, one
# multiply-add per pixel each:

# %%
padded = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))       # zeros around each image
by_taps = sum(w.numpy()[:, 0, i, j].reshape(1, -1, 1, 1) * padded[:, :, i:i + 9, j:j + 9]
              for i in range(3) for j in range(3))
print("nine shifted multiply-adds == conv2d(groups=C):", np.allclose(by_taps, grouped, atol=1e-5))

# %% [markdown]
# ## 3. The three networks, drawn from the models
#
# Each diagram below is built from a forward pass of the library's model at the papers'
# widths (`width=1`) on a 64 × 64 image: the channel counts and strides in the boxes are
# read from the feature maps it returns. In the Fast-SCNN and SegFormer diagrams a box's height
# on the page is its resolution; BiSeNetV2's puts its two branches one above the other.

# %%
def feature_shapes(name, side=64):
    model = models.create(name, num_classes=19).eval()
    with ms.no_grad():
        feats = model.backbone(ms.zeros(1, 3, side, side))
    return model, [(f.shape[1], side // f.shape[2]) for f in feats]         # (channels, stride) per map

def level(stride):
    return -float(np.log2(stride))

def label(text, shape):
    return f"{text}\n{shape[0]} ch, 1/{shape[1]}"

# %% [markdown]
# ### Fast-SCNN: learning to downsample, a global feature extractor, fusion
#
# Fast-SCNN (Poudel et al.) is a two-branch network whose branches **share their first
# layers**. *Learning to downsample* (a 3 × 3 stride-2 convolution, then two
# depthwise-separable stride-2 convolutions) takes the image to 1/8 at once; that map is
# used twice. The *global feature extractor* continues from it: MobileNetV2 inverted
# residual bottlenecks (1 × 1 expand, 3 × 3 depthwise, 1 × 1 project) down to 1/32 and a
# pyramid pooling module on top (lecture 4), so the deep branch sees the whole image. The
# *feature fusion* module upsamples the deep map to 1/8, filters it with a depthwise
# 3 × 3 and adds it, through 1 × 1 projections, to the shared 1/8 map; a classifier of two
# depthwise-separable convolutions follows. In a two-branch network without the sharing,
# the high-resolution first layers would be paid for twice.

# %%
fast, (higher, lower, fused) = feature_shapes("fast_scnn")
fig, ax = plt.subplots(figsize=(10, 3.6))
course.diagram(ax, {
    "img": (0, 0, "image\n3 ch, 1/1", "#eeeeee"),
    "ltd": (1.6, level(higher[1]), label("learning to\ndownsample", higher)),
    "gfe": (4.0, level(lower[1]), label("global feature extractor\n(9 bottlenecks + PPM)", lower)),
    "ffm": (6.4, level(fused[1]), label("feature fusion\n(upsample, add)", fused)),
    "cls": (8.4, level(fused[1]), "classifier\n2 DS convs + 1x1", "#fde3c8"),
    "out": (8.4, 0, "logits, resized\nto 1/1", "#eeeeee"),
}, [("img", "ltd"), ("ltd", "gfe"), ("ltd", "ffm", "shared map"), ("gfe", "ffm"), ("ffm", "cls"), ("cls", "out")],
    title="Fast-SCNN (width 1)")
plt.show()

# %% [markdown]
# ### BiSeNetV2: detail and semantic branches, guided aggregation, booster heads
#
# BiSeNetV2 (Yu et al.) asks two branches for two different things. The **detail
# branch** is shallow and wide: eight plain 3 × 3 convolutions, three of them with stride
# 2, ending at 1/8 with many channels: it keeps boundaries and small things. The
# **semantic branch** is deep and narrow: a stem that reaches 1/4 by a strided conv and a
# max pool side by side, *gather-and-expand* layers (a 3 × 3 conv, a depthwise conv to six
# times the channels, a 1 × 1 projection, a residual) down to 1/32, and a *context
# embedding* that adds the globally pooled vector to every position. The **bilateral
# guided aggregation** lets each branch gate the other: at 1/8 the detail features are
# multiplied by a sigmoid of the upsampled semantic features, at 1/32 the (downsampled)
# detail features by a sigmoid of the semantic ones, and the two products are summed.
# **Booster heads**, FCN heads on the stem and on stages 2-4 (dashed), add their losses in
# training (`aux=True`) so the early semantic layers get their own signal; at inference
# they are not run, and cost nothing.

# %%
bise, (bga, stem, s2, s3, s4) = feature_shapes("bisenetv2")
boxes = {"img": (0, -1, "image\n3 ch, 1/1", "#eeeeee"),
         "detail": (3.6, 0, label("detail branch: 8 convs, wide", bga)),
         "bga": (9.2, -1, label("guided\naggregation", bga)),
         "head": (11.2, -1, "segment head\n(FCN head)", "#fde3c8")}
for i, (name, shape) in enumerate((("stem", stem), ("GE stage 2", s2), ("GE stage 3", s3), ("GE 4 + context", s4))):
    boxes[f"s{i}"] = (1.8 + 1.9 * i, -2, label(name, shape), "#e3f1dc")
    boxes[f"b{i}"] = (1.8 + 1.9 * i, -3.2, "booster", "#f3f3f3")
arrows = [("img", "detail"), ("img", "s0"), ("s0", "s1"), ("s1", "s2"), ("s2", "s3"), ("detail", "bga"),
          ("s3", "bga"), ("bga", "head")] + [(f"s{i}", f"b{i}", None, True) for i in range(4)]
fig, ax = plt.subplots(figsize=(11, 3.6))
course.diagram(ax, boxes, arrows, title="BiSeNetV2 (width 1): detail branch above, semantic branch below; "
               "dashed: booster heads, training only", resolution_axis=False)
plt.show()
with_boosters = models.create("bisenetv2", num_classes=19, aux=True)
booster = course.n_params(with_boosters.auxiliary_head)
print(f"booster heads: {booster:,} parameters, {course.n_params(with_boosters) - booster:,} in the network that runs "
      f"at inference; model.loss adds their losses as 'loss_aux'")

# %% [markdown]
# ### SegFormer: a transformer that produces a feature pyramid
#
# SegFormer (Xie et al.) has four transformer stages at strides 4, 8, 16 and 32, like a
# CNN backbone's. Each stage starts with an **overlapping patch embedding**: a strided
# convolution whose windows overlap (7 × 7 stride 4, then 3 × 3 stride 2), so neighbouring
# tokens share pixels, unlike SETR's or ViT's disjoint patches. Its blocks alternate
# **efficient self-attention**, where the keys and values come from the token map shrunk
# `R × R` times by a stride-`R` convolution (R = 8, 4, 2, 1 per stage), and a
# **Mix-FFN**: a 1 × 1 convolution, a 3 × 3 depthwise convolution, GELU, a 1 × 1
# convolution. The depthwise convolution (with the zero padding of the patch embeddings)
# tells a token where it is, so SegFormer needs **no positional encoding** and runs at
# any input size. The **all-MLP decoder** projects each stage to a common width with a
# 1 × 1 convolution, upsamples all four to 1/4, concatenates, fuses with one more 1 × 1
# and classifies.

# %%
segformer, stages = feature_shapes("segformer_b0")
ratios_r = [stage.blocks[0].attn.sr_ratio for stage in segformer.backbone.stages]
heads = [stage.blocks[0].attn.num_heads for stage in segformer.backbone.stages]
boxes = {"img": (0, 0, "image\n3 ch, 1/1", "#eeeeee")}
for i, (shape, r, h) in enumerate(zip(stages, ratios_r, heads)):
    boxes[f"s{i}"] = (1.9 + 2.3 * i, level(shape[1]),
                      label(f"stage {i + 1}: patch embed\n{len(segformer.backbone.stages[i].blocks)} blocks, "
                            f"{h} head{'s' * (h > 1)}, R={r}", shape), "#e3f1dc")
width_d = segformer.decode_head.channels
boxes["mlp"] = (11.4, level(stages[0][1]), f"all-MLP decoder\n4 x 1x1 -> {width_d} ch,\nupsample, concat,\n1x1 fuse",
                "#fde3c8")
arrows = [("img", "s0")] + [(f"s{i}", f"s{i + 1}") for i in range(3)] + [(f"s{i}", "mlp") for i in range(4)]
fig, ax = plt.subplots(figsize=(12, 4.4))
course.diagram(ax, boxes, arrows, title="SegFormer-B0 (width 1)")
plt.show()

# %% [markdown]
# **Efficient self-attention in numbers.** Full self-attention over `L` tokens builds an
# `L × L` matrix of weights; with keys and values reduced `R × R` times it is
# `L × L/R²`. Here are the four stages on a 512 × 512 image, with each stage's `R` read
# from the model:

# %%
print(f"{'stage':>6}{'stride':>8}{'tokens L':>10}{'R':>4}{'keys L/R^2':>12}{'full L x L':>16}{'reduced':>14}")
for i, (shape, r) in enumerate(zip(stages, ratios_r)):
    side = 512 // shape[1]
    L, keys = side * side, (side // r) ** 2
    print(f"{i + 1:>6}{shape[1]:>8}{L:>10,}{r:>4}{keys:>12,}{L * L:>16,}{L * keys:>14,}")

# %% [markdown]
# Every query still sees the whole image, only through fewer keys. Back-propagating from
# one output token of the library's `EfficientSelfAttention` (stage 1's `R = 8`) to its
# input shows it: every token of the 32 × 32 grid reaches it, while a 3 × 3 convolution
# reaches nine.

# %%
attention = models.EfficientSelfAttention(dim=8, num_heads=2, sr_ratio=8)
conv = nn.Conv2d(8, 8, 3, padding=1)
side = 32
tokens = ms.randn(1, side * side, 8, requires_grad=True)
r, c = 10, 20
attention(tokens, (side, side))[0, r * side + c].sum().backward()
attention_reach = np.abs(tokens.grad.numpy()[0]).sum(axis=1).reshape(side, side)
grid = ms.randn(1, 8, side, side, requires_grad=True)
conv(grid)[0, :, r, c].sum().backward()
conv_reach = np.abs(grid.grad.numpy()[0]).sum(axis=0)
fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.3))
for ax, (name, reach) in zip(axes, (("3x3 conv", conv_reach), ("efficient attention, R=8", attention_reach))):
    ax.imshow(reach > 0, cmap="Greens", vmin=0, vmax=1)
    ax.plot(c, r, "r+", ms=10, mew=2)
    ax.set_title(f"{name}:\n{int((reach > 0).sum())} of {side * side} tokens reach +")
    ax.set_xticks([]); ax.set_yticks([])
plt.show()

# %% [markdown]
# **SETR** (Zheng et al.), the first of the two transformer papers, cuts the image into
# 16 × 16 patches, embeds each as a token with a learned positional encoding, and runs a
# plain ViT encoder (full attention at one resolution, 1/16) before a convolutional
# decoder upsamples the tokens back. Its attention is global from the first layer, but
# its matrix grows with the square of the tokens and its features have one scale;
# SegFormer's reduced keys, four scales and convolutional position cue are the answer to
# both. SETR is not in the zoo.
#
# ## 4. Sizes: parameters and multiply-adds
#
# `benchmarks/zoo_sizes.py` counts each network at the papers' widths on a 512 × 512
# image and writes `benchmarks/results/zoo_sizes.json`; the README's table comes from the
# same file. The paper's parameter count stands beside each (MACs where the paper gives
# them for this size).

# %%
SIZES = course.zoo_sizes()
print("read from benchmarks/results/zoo_sizes.json (python benchmarks/zoo_sizes.py)\n")
print("| model | classes | parameters | paper | booster/aux heads | MACs at 512x512 | of which attention | paper MACs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name in NEW:
    s = SIZES[name]
    full, paper = s["at_512"], s["paper"]
    paper_macs = f"{paper['macs_512'] / 1e9:.2f} G" if "macs_512" in paper else "-"
    print(f"| {name} | {s['num_classes']} | {full['params'] / 1e6:.2f} M | {paper['params'] / 1e6:.2f} M | "
          f"{full['aux_params'] / 1e6:.2f} M | {full['macs'] / 1e9:.2f} G | {full['attention_macs'] / 1e9:.2f} G | {paper_macs} |")

# %% [markdown]
# Where does the compute go? The three networks at the widths this lecture trains them
# with, on one 256 × 32 strip, with the multiply-adds summed per part of each network.
# BiSeNetV2 and SegFormer use the small settings of the same file (`small_setting`, meant
# for 64-256 px images); Fast-SCNN keeps its full width, because at its small setting
# (0.25: 8 to 32 channels) it learns too slowly for the short run below (see the
# "change this" prompt there).
#
# %%
STRIP = (256, 32)
WIDTH = {name: SIZES[name]["small_setting"]["kwargs"]["width"] for name in NEW}
WIDTH["fast_scnn"] = 1.0
PARTS = {              # which part of the network each row of models.profile belongs to
    "fast_scnn": lambda row: "classifier" if row["name"].startswith("decode_head") else row["name"].split(".")[1],
    "bisenetv2": lambda row: ("segment head" if row["name"].startswith("decode_head") else
                              {"detail": "detail branch", "semantic": "semantic branch", "bga": "guided aggregation"}
                              [row["name"].split(".")[1]]),
    "segformer_b0": lambda row: ("all-MLP decoder" if row["name"].startswith("decode_head") else
                                 "attention matrices" if row["type"] == "EfficientSelfAttention" else
                                 f"stage {int(row['name'].split('.')[2]) + 1}"),
}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, name in zip(axes, NEW):
    model = models.create(name, num_classes=5, width=WIDTH[name])
    parts = course.macs_by_part(model, (1, 3) + STRIP, PARTS[name])
    parts = {k: v for k, v in parts.items() if v}
    ax.barh(range(len(parts)), [v / 1e6 for v in parts.values()], color="#7aa6d6")
    ax.set_yticks(range(len(parts)), list(parts)); ax.invert_yaxis()
    ax.set_xlabel("M multiply-adds")
    ax.set_title(f"{name} (width {WIDTH[name]}): {sum(parts.values()) / 1e6:.1f} M")
    largest = max(parts, key=parts.get)
    print(f"{name:>13}: the largest part is the {largest}, {parts[largest] / sum(parts.values()):.0%} of the multiply-adds")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. A short run on the context strips
#
# Lecture 4's strips: a blob is a *boat* over water and a *car* over road, and only the
# band far below says which. Each of the three networks (at the widths above) and
# FCN trains for the same short run: same strips, batch, optimizer, learning-rate schedule
# and loss (the cross-entropy with blob pixels weighted 10 times, as in lecture 4).
# BiSeNetV2 trains without its booster heads, so that every model gets the same loss.
# Besides mIoU we measure, as in lecture 4, the share of blob pixels labelled boat or
# car that got the right one of the two (guessing gives 50 %). FCN also trains with a
# second seed, to show how far a seed alone moves the score.
#
# These are **short runs** (a few dozen steps, one seed each, two for FCN) so that the
# notebook runs in two minutes; they show how far each network gets early, not where it
# ends up. The longer runs (many more steps, three seeds, no class weights) are made by
# `benchmarks/bench_zoo.py` and stored in `benchmarks/results/bench_zoo_*.json`; the
# table after the run prints what those files hold, steps and seeds included.

# %%
from minisegnet.train import evaluate

STEPS, BATCH, LR = 60, 8, 5e-3
train_strips = data.ContextStrips(length=STEPS * BATCH, image_size=STRIP, split="train", seed=0)
val_strips = data.ContextStrips(length=48, image_size=STRIP, split="val", seed=0)
class_weight = ms.tensor([1.0, 1.0, 1.0, 10.0, 10.0])          # background, water, road, boat, car

def weighted_loss(model, images, masks):
    return F.cross_entropy(model(images), masks, weight=class_weight)

def short_run(name, seed=0):
    ms.manual_seed(seed)
    kwargs = {"width": WIDTH[name]} if name in WIDTH else {}
    model = models.create(name, num_classes=5, **kwargs)
    _, seconds = course.train(model, train_strips, STEPS, batch_size=BATCH, lr=LR, loss=weighted_loss, seed=seed)
    cm = evaluate(model, data.DataLoader(val_strips, batch_size=16), num_classes=5)
    blob = cm.matrix[3:, 3:]                       # truth boat/car (rows) x prediction boat/car (columns)
    return {"model": model, "scores": cm.compute(), "seconds": seconds,
            "boat_or_car": np.trace(blob) / max(blob.sum(), 1), "params": course.n_params(model),
            "macs": course.macs(model, (1, 3) + STRIP)}

RUNS = {name: short_run(name) for name in ("fcn",) + NEW}
fcn_seed1 = short_run("fcn", seed=1)["scores"]["mIoU"]
print(f"| model | parameters | MACs per strip | mIoU after {STEPS} steps | boat-or-car right | "
      + " | ".join(val_strips.classes) + " | seconds |")
print("|---|---:|---:|---:|---:|" + "---:|" * len(val_strips.classes) + "---:|")
for name, run in RUNS.items():
    s = run["scores"]
    print(f"| {name} | {run['params']:,} | {run['macs'] / 1e6:.1f} M | {s['mIoU']:.3f} | "
          f"{100 * run['boat_or_car']:.0f} % | " + " | ".join(f"{v:.2f}" for v in s["IoU"]) + f" | {run['seconds']:.0f} |")
print(f"\nFCN with seed 1 instead of 0: mIoU {fcn_seed1:.3f}")

# %%
images, masks = next(iter(data.DataLoader(val_strips, batch_size=3)))
predictions = {name: run["model"].eval().predict(images).numpy() for name, run in RUNS.items()}
columns = [("truth", None)] + [(name, name) for name in RUNS]
fig, axes = plt.subplots(1, 3 * (len(columns) + 1), figsize=(13, 6.4))
for i in range(3):
    panels = [(f"strip {i}", images.numpy()[i].transpose(1, 2, 0)),
              ("truth", viz.colorize(masks.numpy()[i], val_strips.palette))]
    panels += [(name.replace("_", "\n"), viz.colorize(predictions[name][i], val_strips.palette)) for name in RUNS]
    for p, (title, picture) in enumerate(panels):
        ax = axes[i * len(panels) + p]
        ax.imshow(picture)
        ax.set_title(title, fontsize=8)
for ax in axes:
    ax.axis("off")
handles = [plt.Rectangle((0, 0), 1, 1, color=val_strips.palette[k] / 255) for k in range(5)]
fig.legend(handles, val_strips.classes, loc="lower center", ncol=5, frameon=False)
fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.06, wspace=0.15)
plt.show()

# %% [markdown]
# What this run shows, in sentences written from the numbers above (they change when you
# change the settings):

# %%
def what_the_run_shows(runs, fcn_other_seed, steps):
    miou = {name: run["scores"]["mIoU"] for name, run in runs.items()}
    order = sorted(miou, key=miou.get, reverse=True)
    noise = abs(miou["fcn"] - fcn_other_seed)
    clear = [n for n in NEW if abs(miou[n] - miou["fcn"]) > noise]
    within = [n for n in NEW if n not in clear]
    lines = [f"After {steps} steps the order is " + " > ".join(f"{n} ({miou[n]:.3f})" for n in order) + "."]
    lines.append(f"A second seed moved FCN by {noise:.3f}; "
                 + (f"{', '.join(clear)} differ{'s' if len(clear) == 1 else ''} from FCN by more than that"
                    if clear else "none of the three differs from FCN by more than that")
                 + (f", while {', '.join(within)} {'is' if len(within) == 1 else 'are'} within it." if within and clear
                    else "." if clear else ", so this run cannot rank them against FCN."))
    share = {n: runs[n]["boat_or_car"] for n in runs}
    reading = [n for n in runs if share[n] > 0.75]
    lines.append("Boat or car decided right: " + ", ".join(f"{n} {100 * v:.0f} %" for n, v in share.items())
                 + " (chance: 50 %); "
                 + (f"only {', '.join(reading)} decide{'s' if len(reading) == 1 else ''} more than three quarters "
                    "of the blob pixels right, which a model can do only by reading the band."
                    if reading else "no model decides more than three quarters right yet: none reads the band."))
    cheap = min(NEW, key=lambda n: runs[n]["macs"])
    lines.append(f"{cheap} needs {runs[cheap]['macs'] / runs['fcn']['macs']:.0%} of FCN's multiply-adds per strip "
                 f"and reaches {miou[cheap] / miou['fcn']:.0%} of its mIoU here.")
    return " ".join(lines)

display(Markdown(what_the_run_shows(RUNS, fcn_seed1, STEPS)))

# %% [markdown]
# **Change this and re-run.** Set `STEPS = 150` in the training cell (about two and a half
# times the time). *Prediction:* every model's blob IoUs rise; FCN's boat-or-car share
# stays near 50 % (the band lies outside its receptive field, lecture 4), while the
# networks with a global path (Fast-SCNN's pyramid pooling, BiSeNetV2's context
# embedding, SegFormer's attention) can climb above it. Or delete the line
# `WIDTH["fast_scnn"] = 1.0` in section 4 to train Fast-SCNN at its small setting:
# *prediction:* after 60 steps it still labels (almost) every pixel background, band
# included, and its mIoU stays near a fifth (one class of five found).
#
# The longer runs, read from the results files `benchmarks/bench_zoo.py` writes (with the
# command and commit of each):

# %%
MEASURED = course.print_bench_zoo("context", "context_control")
present = sorted({m for (_, m) in MEASURED if m in NEW})
missing = [m for m in NEW if m not in present]
if missing:
    print(f"\nNo longer runs of {', '.join(missing)} in these files yet; to add them:\n"
          f"  python benchmarks/bench_zoo.py --steps 600 --datasets context,context_control "
          f"--models {','.join(missing)} --seeds 0,1,2 --append")

# %% [markdown]
# What the longer runs say, computed from the table above: for each network, its lead over
# FCN on the strips (where the far band decides boat or car), and the same on the control
# (where the shapes differ and no band is needed). A network that reads the band should lead
# on the strips by much more than on the control; a network that is simply stronger leads
# on both. The spread is the smallest-to-largest over the seeds.

# %%
from statistics import mean

if ("context", "fcn") in MEASURED and ("context_control", "fcn") in MEASURED:
    for name in ["pspnet", "deeplabv3", *NEW]:
        if ("context", name) not in MEASURED or ("context_control", name) not in MEASURED:
            continue
        strips = mean(MEASURED["context", name]) - mean(MEASURED["context", "fcn"])
        control = mean(MEASURED["context_control", name]) - mean(MEASURED["context_control", "fcn"])
        spread = max(max(v) - min(v) for v in (MEASURED["context", name], MEASURED["context_control", name]))
        verdict = ("reads the band: most of its lead is a context lead"
                   + (", and it is ahead on the control too" if control > 0.03 else "") if strips - control > 0.1 else
                   "leads by about as much without the band: it is stronger, not more context-aware"
                   if strips > 0.02 else "does not beat FCN here")
        print(f"{name:>13}: {strips:+.3f} over FCN on the strips, {control:+.3f} on the control "
              f"(seed spread up to {spread:.3f}) -> {verdict}")

# %% [markdown]
# ## Summary
#
# * **Speed**: cost scales with pixels. ICNet computes context on a small image and detail
#   on cheap branches; Fast-SCNN shares its first layers ("learning to downsample") between
#   a 1/8 detail path and a 1/32 global feature extractor with pyramid pooling; BiSeNetV2
#   separates a wide, shallow detail branch from a narrow, deep semantic branch and lets
#   each gate the other, with booster heads that only train. Depthwise(-separable)
#   convolutions, several times cheaper than plain ones, make up most of Fast-SCNN and of
#   BiSeNetV2's semantic branch.
# * **Transformers**: self-attention gives every position a global, content-dependent
#   view in one layer, at a cost quadratic in the number of tokens. SETR attends over
#   patches at one scale; SegFormer reduces keys and values by `R × R`, builds a four-scale
#   pyramid with overlapping patch embeddings, lets Mix-FFN's depthwise convolution stand in
#   for positional encodings, and decodes with 1 × 1 projections only.
# * A short run says how fast a network starts, not how good it is; the sizes come from
#   `benchmarks/results/zoo_sizes.json`, the longer comparisons from `bench_zoo`.
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
