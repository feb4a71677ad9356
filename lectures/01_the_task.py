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
# # Lecture 1 — The task: a class for every pixel
#
# A photograph is a grid of colours. *Semantic segmentation* answers, for **every
# pixel** of that grid, the question "what kind of thing is this?", choosing from a
# list of classes fixed in advance (road, car, person, sky, ...). The answer is an
# image of its own: a *label map* with one class number per pixel.
#
# In this lecture we
#
# 1. look at images and label maps as arrays, and learn to draw label maps;
# 2. compare segmentation with its neighbours: image classification, object
#    detection and instance segmentation;
# 3. sketch how a convolutional network produces a label map, and
# 4. list what per-pixel labels are used for.
#
# Everything is computed here, with the `minisegnet` library that the later
# lectures open up layer by layer.

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
# ## 1. Images and label maps are arrays
#
# `minisegnet.data.Shapes` *generates* a small segmentation dataset: circles, squares and
# triangles of random colour on a textured background. Nothing is downloaded, and
# item `i` is the same on every machine. Each item is a pair:
#
# * the **image**, a float array of shape `(3, H, W)` (channels first, values in [0, 1]);
# * the **mask** (label map), an integer array of shape `(H, W)`: `0` background,
#   `1` circle, `2` square, `3` triangle.

# %%
from minisegnet import data, viz

shapes = data.Shapes(length=64, image_size=64, seed=0)
image, mask = shapes[0]
print("classes:", shapes.classes)
print("image:", image.shape, image.dtype, f"values in [{image.min():.2f}, {image.max():.2f}]")
print("mask: ", mask.shape, mask.dtype, "labels present:", np.unique(mask))

# %% [markdown]
# A label map is just numbers. Here is a 12 × 20 window of it, cut around the edge of
# the first object, exactly as the network will have to produce it:

# %%
rows, cols = np.nonzero(mask)
r0 = int(np.clip(rows.min() - 3, 0, mask.shape[0] - 12))
c0 = int(np.clip(cols[rows == rows.min()][0] - 10, 0, mask.shape[1] - 20))
window = mask[r0:r0 + 12, c0:c0 + 20]
print(f"mask[{r0}:{r0 + 12}, {c0}:{c0 + 20}] =")
print("\n".join(" ".join(str(v) for v in row) for row in window))

# %% [markdown]
# To *look* at a label map we give every class a colour, a **palette** of shape
# `(K, 3)`, and index it with the map: `palette[mask]` turns `(H, W)` class numbers into
# an `(H, W, 3)` colour image. `viz.colorize` does exactly that (and paints the special
# label 255, "no label", white); `viz.overlay` blends the colours over the photo.

# %%
palette = shapes.palette                         # (4, 3) uint8, one colour per class
coloured = palette[mask]                         # the whole trick: fancy indexing
assert np.array_equal(coloured, viz.colorize(mask, palette))

fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
axes[0].imshow(image.transpose(1, 2, 0)); axes[0].set_title("image (3, H, W)")
axes[1].imshow(mask, cmap="gray"); axes[1].set_title("mask as grey levels 0..3")
axes[1].add_patch(plt.Rectangle((c0 - 0.5, r0 - 0.5), 20, 12, fill=False, ec="yellow", lw=1.5))
axes[2].imshow(coloured); axes[2].set_title("palette[mask]")
axes[3].imshow(viz.overlay(image, mask, alpha=0.6, palette=palette)); axes[3].set_title("overlay")
for ax in axes:
    ax.axis("off")
handles = [plt.Rectangle((0, 0), 1, 1, color=palette[k] / 255) for k in range(len(shapes.classes))]
fig.legend(handles, shapes.classes, loc="lower center", ncol=4, frameon=False)
fig.tight_layout(rect=(0, 0.08, 1, 1))
plt.show()

# %% [markdown]
# The library's plotting helpers draw the same thing for several samples at once.
# `viz.plot_samples` returns a matplotlib `Figure`; a notebook shows it when it is the
# last value of a cell.

# %%
viz.plot_samples(shapes, indices=range(4), title="four Shapes samples")

# %% [markdown]
# ### Colour alone does not decide the class
#
# Could a network label each pixel from its colour alone? In this dataset, no: every
# shape draws its colour from the same distribution, so the same colour can be a
# circle in one image and a triangle in the next. Below, for 64 images, the mean colour of
# each object, coloured by its class: the classes are completely mixed. The class of a pixel
# is decided by its **neighbourhood** (curved or straight edges, three or four
# corners), which is why segmentation networks are convolutional: each output
# pixel looks at a window of input pixels around it.

# %%
points, labels = [], []
for i in range(len(shapes)):
    img, msk = shapes[i]
    for k in (1, 2, 3):
        if (msk == k).sum() > 20:
            points.append(img[:, msk == k].mean(axis=1))
            labels.append(k)
points, labels = np.array(points), np.array(labels)

fig, ax = plt.subplots(figsize=(4.5, 4))
for k in (1, 2, 3):
    sel = labels == k
    ax.scatter(points[sel, 0], points[sel, 2], s=18, color=palette[k] / 255, label=shapes.classes[k])
ax.set_xlabel("mean red of the object"); ax.set_ylabel("mean blue of the object")
ax.legend(); ax.set_title("object colour vs class: no separation")
plt.show()

# %% [markdown]
# ### Most pixels are background
#
# Counting pixels per class over the whole dataset shows a strong imbalance, which
# matters later: a "network" that answers *background* everywhere is right on most
# pixels and still useless. Lecture 6 introduces scores (IoU, Dice) that are not
# fooled by this.

# %%
counts = np.zeros(len(shapes.classes), dtype=np.int64)
for i in range(len(shapes)):
    counts += np.bincount(shapes[i][1].ravel(), minlength=len(shapes.classes))
fractions = counts / counts.sum()
for name, f in zip(shapes.classes, fractions):
    print(f"{name:>10}: {100 * f:5.1f} % of the pixels")
print(f"'all background' would be right on {100 * fractions[0]:.1f} % of the pixels")

# %% [markdown]
# ## 2. Segmentation and its neighbours
#
# Four tasks look at the same scene and answer different questions:
#
# | task | output | answers |
# |---|---|---|
# | image classification | one label (or a set of labels) for the whole image | *is there a car?* |
# | object detection | a box and a class for every object | *where, roughly, is each car?* |
# | **semantic segmentation** | a class for every pixel | *which pixels are car?* |
# | instance segmentation | a class **and an object id** for every object pixel | *which pixels belong to which car?* |
#
# Semantic segmentation draws no boxes and **does not separate objects of one class**:
# three cars are all simply *car*. Let us draw a small street scene with three cars,
# two of them overlapping, and one pedestrian, and compute all four answers from its
# drawing.

# %%
H, W = 96, 160
yy, xx = np.mgrid[0:H, 0:W] + 0.5
scene = np.empty((H, W, 3)); scene[:] = (0.62, 0.78, 0.92)          # sky
semantic = np.zeros((H, W), dtype=np.int64)                          # 0 background
instance = np.zeros((H, W), dtype=np.int64)                          # 0 = no object
CLASSES = ("background", "road", "car", "person")

def paint(region, label, colour, object_id=0):
    scene[region] = colour
    semantic[region] = label
    instance[region] = object_id

paint(yy > 58, 1, (0.34, 0.34, 0.36))                                # road
paint((yy > 58) & (np.abs(yy - 70) < 0.8) & ((xx // 10) % 2 == 0), 1, (0.9, 0.9, 0.85))

def car(x0, bottom, colour, object_id):
    body = (xx >= x0) & (xx < x0 + 36) & (yy >= bottom - 13) & (yy < bottom - 3)
    cabin = (xx >= x0 + 8) & (xx < x0 + 27) & (yy >= bottom - 21) & (yy < bottom - 12)
    window = (xx >= x0 + 10) & (xx < x0 + 25) & (yy >= bottom - 19) & (yy < bottom - 13)
    wheels = ((yy - bottom + 3) ** 2 + (xx - x0 - 8) ** 2 <= 18) | \
             ((yy - bottom + 3) ** 2 + (xx - x0 - 28) ** 2 <= 18)
    paint(body | cabin, 2, colour, object_id)
    paint(window, 2, (0.75, 0.88, 0.95), object_id)
    paint(wheels, 2, (0.08, 0.08, 0.08), object_id)

car(8, 86, (0.80, 0.15, 0.12), 1)
car(38, 90, (0.15, 0.30, 0.75), 2)          # overlaps the first car
car(112, 80, (0.95, 0.75, 0.10), 3)
person = ((yy - 49) ** 2 + (xx - 96) ** 2 <= 10) | (((yy - 63) / 10) ** 2 + ((xx - 96) / 3.5) ** 2 <= 1)
paint(person, 3, (0.30, 0.55, 0.25), 4)

def bounding_box(region):
    rows, cols = np.nonzero(region)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1   # x0, y0, x1, y1

boxes = {k: bounding_box(instance == k) for k in range(1, instance.max() + 1)}
print("classes present:", [CLASSES[k] for k in np.unique(semantic)])
print("boxes (x0, y0, x1, y1):", boxes)

# %%
scene_palette = np.array([[0, 0, 0], [128, 64, 128], [0, 0, 142], [220, 20, 60]], dtype=np.uint8)
fig, axes = plt.subplots(1, 4, figsize=(15, 3.3))
axes[0].imshow(scene)
axes[0].set_title("classification: {car, person, road}")
axes[1].imshow(scene)
for k, (x0, y0, x1, y1) in boxes.items():
    name = "person" if k == 4 else f"car {k}"
    axes[1].add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1.5))
    axes[1].text(x0, y0 - 2, name, color="yellow", fontsize=8)
axes[1].set_title("detection: a box per object")
axes[2].imshow(viz.colorize(semantic, scene_palette))
axes[2].set_title("semantic: all cars are 'car'")
axes[3].imshow(viz.colorize(instance, viz.make_palette(instance.max() + 1)))
axes[3].set_title("instance: every object its own id")
for ax in axes:
    ax.axis("off")
handles = [plt.Rectangle((0, 0), 1, 1, color=scene_palette[k] / 255) for k in range(1, 4)]
axes[2].legend(handles, CLASSES[1:], loc="upper left", fontsize=7)
fig.tight_layout()
plt.show()


# %% [markdown]
# Notice what the semantic map cannot tell: *how many* cars there are. The two
# overlapping cars melt into one region of *car* pixels. Counting the connected regions
# of each map makes this concrete (a small flood fill, written out below):

# %%
def count_regions(binary):
    # number of 4-connected regions of True pixels (iterative flood fill)
    seen = np.zeros_like(binary, dtype=bool)
    regions = 0
    for start in zip(*np.nonzero(binary)):
        if seen[start]:
            continue
        regions += 1
        seen[start] = True
        stack = [start]
        while stack:
            r, c = stack.pop()
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < binary.shape[0] and 0 <= cc < binary.shape[1] \
                        and binary[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
    return regions

car_pixels = semantic == 2
print("cars in the scene (instance ids):    ", len(np.unique(instance[car_pixels])))
print("car regions in the semantic map:      ", count_regions(car_pixels))

# %% [markdown]
# Classes like *road* or *sky* are "stuff": amorphous regions that one does not
# count. Classes like *car* or *person* are "things": countable objects. Semantic
# segmentation treats both the same way (a label per pixel); instance segmentation
# separates the things; *panoptic* segmentation does both at once (a class for every
# pixel plus an id for every thing). In this course we stay with semantic
# segmentation.
#
# ## 3. How a network produces a label map
#
# A classification network maps an image `(3, H, W)` to `K` class scores. A
# segmentation network maps it to `K` **score maps** `(K, H, W)`: for each pixel a score
# per class. The label map is the class with the highest score, pixel by pixel
# (`argmax` over the class axis). Here the scores are made up, to show the shapes:

# %%
K = len(shapes.classes)
onehot = (mask[None] == np.arange(K)[:, None, None]).astype(np.float32)   # (K, H, W)
rng = np.random.default_rng(0)
scores = onehot + 0.6 * rng.standard_normal(onehot.shape)                 # noisy "network output"
labels = scores.argmax(axis=0)                                            # (H, W)
print("scores:", scores.shape, "-> argmax over classes ->", labels.shape)
print(f"pixels labelled correctly: {100 * (labels == mask).mean():.1f} %")

fig, axes = plt.subplots(1, K + 1, figsize=(13, 2.8))
for k in range(K):
    axes[k].imshow(scores[k], cmap="viridis"); axes[k].set_title(f"score map '{shapes.classes[k]}'")
axes[K].imshow(viz.colorize(labels, palette)); axes[K].set_title("argmax = label map")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# The networks of this course share one layout, shown below with the *real* feature
# shapes of the small ResNet the library uses (`models.resnet_tiny`) on a 64 × 64
# image:
#
# * an **encoder** (backbone) of convolutions, batch normalisation, ReLUs and
#   downsampling. Each stage halves the resolution and adds channels. Early layers
#   respond to edges and colours; deep layers, which see large windows of the image,
#   respond to whole objects. But they are coarse: at stride 32 a 64 × 64 image is
#   2 × 2 feature pixels.
# * a **decoder** (head) that turns the deepest features into class scores and brings
#   them back to the image's resolution.
#
# The network must therefore be *fully convolutional*: no layer may flatten the
# spatial grid away, because the answer is itself a grid. Lecture 3 (FCN) starts
# from exactly this problem; lectures 4 and 5 (PSPNet, DeepLab) are about giving every
# pixel enough *context* without losing resolution.

# %%
from minisegnet import models

backbone = models.resnet_tiny(output_stride=32).eval()
with ms.no_grad():
    feats = backbone(ms.tensor(image[None]))
stages = [("image", image.shape)] + [(f"c{i + 1} (stride {s})", f.shape[1:])
                                       for i, (f, s) in enumerate(zip(feats, backbone.strides))]
stages += [("class scores", (K,) + tuple(feats[-1].shape[2:])), ("upsampled", (K,) + image.shape[1:])]
for name, shape in stages:
    print(f"{name:>18}: {tuple(shape)}")

fig, ax = plt.subplots(figsize=(12, 3.2))
x = 0.0
for i, (name, (c, h, w)) in enumerate(stages):
    width = 0.25 + 0.35 * np.log2(c)                   # wider box = more channels
    height = 0.6 + 2.4 * h / 64                        # taller box = higher resolution
    colour = "0.85" if i in (0, len(stages) - 1) else ("tab:blue" if i < len(stages) - 2 else "tab:orange")
    ax.add_patch(plt.Rectangle((x, -height / 2), width, height, color=colour, alpha=0.7))
    ax.text(x + width / 2, height / 2 + 0.1, f"{name}\n{c}×{h}×{w}", ha="center", va="bottom", fontsize=8)
    if i:
        ax.annotate("", (x, 0), (x - 0.45, 0), arrowprops=dict(arrowstyle="->"))
    x += width + 0.45
ax.text(3.5, -1.9, "encoder: resolution down, channels up", color="tab:blue", fontsize=9)
ax.text(x - 4.0, -1.9, "decoder: scores back to full size", color="tab:orange", fontsize=9)
ax.set_xlim(-0.2, x); ax.set_ylim(-2.1, 2.6); ax.axis("off")
plt.show()

# %% [markdown]
# **Shallow and deep features.** What do the stages compute? We train the library's FCN
# for 60 steps on Shapes (a few seconds; lecture 3 explains the training loop) and draw,
# for one image, the four most active channels of the first stage `c1` (stride 4) and of
# the last stage `c4` (stride 8, after dilation). Colour is the channel's value.

# %%
ms.manual_seed(0)
fcn = models.create("fcn", num_classes=K)
course.train(fcn, data.Shapes(length=480, image_size=64, seed=0, split="train"), steps=60, batch_size=8, lr=3e-3)
with ms.no_grad():
    c1, _, _, c4 = fcn.backbone(ms.tensor(image[None]))
rows = [("c1 (stride 4)", c1.numpy()[0]), ("c4 (stride 8)", c4.numpy()[0])]
fig, axes = plt.subplots(2, 5, figsize=(13, 5.4))
for row, (name, maps) in enumerate(rows):
    axes[row, 0].imshow(image.transpose(1, 2, 0)); axes[row, 0].set_title("image"); axes[row, 0].axis("off")
    strongest = np.argsort(maps.reshape(len(maps), -1).std(axis=1))[::-1][:4]
    for col, ch in enumerate(strongest, start=1):
        im = axes[row, col].imshow(maps[ch], cmap="viridis")
        axes[row, col].set_title(f"{name}, channel {ch}", fontsize=9); axes[row, col].axis("off")
        fig.colorbar(im, ax=axes[row, col], fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# The shallow channels are local detectors: their strongest responses sit on edges
# (a rim of the shape, the border of the image) and on colour contrast, and they still
# show the background's texture. The deep channels are coarser and each lights up over a
# large region, the object or the background around it: closer to *what* is where, which
# is what a label map needs, but at a fraction of the resolution. (After only 60 steps of
# training the picture is rough; change `steps=60` to 300 and re-run: *prediction:* the
# deep channels become cleaner object / background maps, the shallow ones stay edge-like.)
# Combining the two is the theme of lecture 3.
#
# ## 4. What per-pixel labels are for
#
# A box is enough to *count* or *track* objects; a label per pixel is needed whenever
# the exact **extent** of a region matters:
#
# * **Driving and robotics.** Which part of the ground ahead is drivable road, where the
#   kerb is, which pixels are pedestrians. A curving road does not fit in a box.
# * **Medicine.** Outlining an organ or a tumour in a scan; its area (or volume) is
#   simply a count of labelled pixels, and treatment may be planned on that outline.
#   The Dice score of lecture 6 comes from this field.
# * **Maps from above.** Land cover (water, forest, fields, buildings) in satellite and
#   aerial images, flood extent after a storm, building footprints.
# * **People and photos.** Parsing a person into hair, face, skin and clothes; blurring
#   or replacing the background of a video call or portrait; cutting an object out of
#   a photo (matting refines the border to soft, sub-pixel alpha values).
# * **Agriculture and industry.** Weeds versus crop for targeted spraying, defects on
#   a surface, cells in a microscope image.
#
# ## Summary
#
# * Segmentation outputs a label map `(H, W)` of class indices, usually as the argmax
#   of `K` score maps `(K, H, W)`.
# * A palette turns a label map into a picture: `palette[mask]`.
# * Semantic segmentation separates classes, not objects; instance and panoptic
#   segmentation add object ids.
# * A pixel's class depends on its surroundings, so the network must look at
#   neighbourhoods (convolutions), and it must keep a spatial grid all the way to the
#   output. How that grid is made coarse and then fine again is the subject of the
#   next lectures; lecture 2 first opens the engine that computes it.
