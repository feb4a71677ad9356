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
# # Lecture 6 — Measuring a segmentation: IoU, Dice and the confusion matrix
#
# A good segmentation *overlaps* the truth: its predicted region for a class and the true
# region should coincide. Two overlap scores dominate the field:
#
# $$\mathrm{IoU}(A, B) = \frac{|A \cap B|}{|A \cup B|} \quad\text{(Jaccard index)}, \qquad
#   \mathrm{Dice}(A, B) = \frac{2\,|A \cap B|}{|A| + |B|} \quad\text{(Dice coefficient)},$$
#
# where `A` is the set of predicted pixels of a class, `B` the true ones, and `|·|` counts
# pixels. Both are 0 for disjoint regions and 1 for a perfect match. In this lecture we
# draw them, relate them, rewrite them with true/false positives, extend them to many
# classes with the confusion matrix, and look at three details that change reported
# numbers: how to average, ignored pixels, and class imbalance. The syllabus quiz Q2 is
# at the end.

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
# ## 1. Two discs
#
# The truth `B` is a disc, and the prediction `A` is a slightly smaller disc, shifted.
# We shade the intersection and the union, count their pixels, and compare the library's
# `metrics.iou` / `metrics.dice` with the formulas:

# %%
from minisegnet import metrics

yy, xx = np.mgrid[0:100, 0:100] + 0.5
def disc(cy, cx, r):
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2

truth = disc(48, 42, 26)
pred = disc(55, 60, 22)
inter, union = truth & pred, truth | pred
print(f"|B| (truth) = {truth.sum()}, |A| (prediction) = {pred.sum()}, |A ∩ B| = {inter.sum()}, |A ∪ B| = {union.sum()}")
print(f"IoU  = {inter.sum()} / {union.sum()} = {inter.sum() / union.sum():.4f}   metrics.iou:  {metrics.iou(pred, truth):.4f}")
print(f"Dice = 2·{inter.sum()} / ({pred.sum()} + {truth.sum()}) = {2 * inter.sum() / (pred.sum() + truth.sum()):.4f}"
      f"   metrics.dice: {metrics.dice(pred, truth):.4f}")

def outline(ax):
    ax.contour(truth, levels=[0.5], colors="tab:blue", linewidths=2)
    ax.contour(pred, levels=[0.5], colors="tab:red", linewidths=2)
    ax.set_xticks([]); ax.set_yticks([])

fig, axes = plt.subplots(1, 4, figsize=(13, 3.5))
axes[0].imshow(np.ones_like(truth), cmap="gray", vmin=0, vmax=1); axes[0].set_title("truth B (blue), prediction A (red)")
axes[1].imshow(inter, cmap="Purples", vmin=0, vmax=1.3); axes[1].set_title(f"A ∩ B: {inter.sum()} px")
axes[2].imshow(union, cmap="Purples", vmin=0, vmax=1.3); axes[2].set_title(f"A ∪ B: {union.sum()} px")
both = np.zeros(truth.shape + (3,)) + 1
both[truth] -= (0.5, 0.3, 0.0); both[pred] -= (0.0, 0.3, 0.5)
axes[3].imshow(np.clip(both, 0, 1)); axes[3].set_title("|A| + |B| counts A ∩ B twice")
for ax in axes:
    outline(ax)
plt.show()

# %% [markdown]
# Sliding the prediction across the truth shows how both scores fall with the overlap,
# Dice always above IoU:

# %%
shifts = np.arange(0, 61, 3)
ious = [metrics.iou(disc(48, 42 + s, 26), truth) for s in shifts]
dices = [metrics.dice(disc(48, 42 + s, 26), truth) for s in shifts]
fig, ax = plt.subplots(figsize=(5.5, 3))
ax.plot(shifts, ious, marker="o", label="IoU"); ax.plot(shifts, dices, marker="s", label="Dice")
ax.set_xlabel("shift of an equal disc (pixels)"); ax.set_ylabel("score"); ax.set_title("two equal discs sliding apart")
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Slider: two shifting discs.** Move the prediction (`shift`) and change its radius
# (`radius`; the truth has radius 26). *Predict first:* with no shift, which radius gives
# IoU 0.5, and what is Dice then? (Check: Dice = 2·0.5 / 1.5.) (Static figure: shift 10,
# radius 20.)

# %%
def draw_discs(shift, radius):
    a = disc(48, 42 + shift, radius)
    inter = (a & truth).sum()
    fig, ax = plt.subplots(figsize=(4, 3.6))
    picture = np.ones(truth.shape + (3,))
    picture[truth] -= (0.5, 0.3, 0.0); picture[a] -= (0.0, 0.3, 0.5)
    ax.imshow(np.clip(picture, 0, 1))
    ax.contour(truth, levels=[0.5], colors="tab:blue"); ax.contour(a, levels=[0.5], colors="tab:red")
    ax.set_title(f"IoU {metrics.iou(a, truth):.3f}, Dice {metrics.dice(a, truth):.3f} (|A∩B| = {inter})", fontsize=9)
    ax.set_xticks([]); ax.set_yticks([])
    plt.show()

course.slider(draw_discs, [{"shift": 10, "radius": 20}], shift=(0, 60, 1), radius=(5, 40, 1))

# %% [markdown]
# ## 2. Dice and IoU measure the same thing
#
# Since $|A| + |B| = |A \cup B| + |A \cap B|$, writing $I = |A \cap B|$ and $U = |A \cup B|$,
#
# $$\mathrm{Dice} = \frac{2I}{U + I} = \frac{2\,(I/U)}{1 + I/U} = \frac{2\,\mathrm{IoU}}{1 + \mathrm{IoU}},
#   \qquad \mathrm{IoU} = \frac{\mathrm{Dice}}{2 - \mathrm{Dice}} .$$
#
# For a *single* pair of masks one is a fixed increasing function of the other: they rank
# predictions identically, and Dice ≥ IoU with equality only at 0 and 1. We verify the
# identity on many random pairs of masks:

# %%
rng = np.random.default_rng(0)
pairs = []
for _ in range(300):
    density_a, density_b = rng.uniform(0.05, 0.95, size=2)
    a = rng.random((32, 32)) < density_a
    b = (rng.random((32, 32)) < density_b) | (a & (rng.random((32, 32)) < rng.uniform()))
    pairs.append((metrics.iou(a, b), metrics.dice(a, b)))
pairs = np.array(pairs)
print("max |Dice - 2 IoU / (1 + IoU)| over 300 pairs:", np.abs(pairs[:, 1] - 2 * pairs[:, 0] / (1 + pairs[:, 0])).max())

t = np.linspace(0, 1, 101)
fig, ax = plt.subplots(figsize=(4.2, 3.8))
ax.plot(t, 2 * t / (1 + t), color="k", label="Dice = 2 IoU / (1 + IoU)")
ax.plot(t, t, color="0.6", ls="--", label="Dice = IoU")
ax.scatter(pairs[:, 0], pairs[:, 1], s=8, color="tab:orange", label="random mask pairs")
ax.set_xlabel("IoU"); ax.set_ylabel("Dice"); ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The *averages* over many images or classes are a different matter: the mean of Dice
# scores is not a function of the mean of IoU scores, so tables report one or the other
# (or both), never a conversion.
#
# ## 3. True positives, false positives, false negatives
#
# For one class, every pixel falls in one of four cells: predicted and true (**TP**),
# predicted but not true (**FP**), true but missed (**FN**), neither (**TN**). Then
# $|A \cap B| = TP$, $|A| = TP + FP$, $|B| = TP + FN$, and
#
# $$\mathrm{IoU} = \frac{TP}{TP + FP + FN}, \qquad \mathrm{Dice} = \frac{2\,TP}{2\,TP + FP + FN} .$$
#
# Neither uses TN: a huge, correctly ignored background does not inflate the score.
# Dice is also the F1 score: the harmonic mean of precision $TP/(TP+FP)$ and recall
# $TP/(TP+FN)$.

# %%
TP = int((pred & truth).sum()); FP = int((pred & ~truth).sum())
FN = int((~pred & truth).sum()); TN = int((~pred & ~truth).sum())
precision, recall = TP / (TP + FP), TP / (TP + FN)
print(f"TP={TP}  FP={FP}  FN={FN}  TN={TN}")
print(f"IoU  = TP/(TP+FP+FN)    = {TP / (TP + FP + FN):.4f}  (metrics.iou {metrics.iou(pred, truth):.4f})")
print(f"Dice = 2TP/(2TP+FP+FN)  = {2 * TP / (2 * TP + FP + FN):.4f}  (metrics.dice {metrics.dice(pred, truth):.4f})")
print(f"F1 of precision {precision:.3f} and recall {recall:.3f} = {2 * precision * recall / (precision + recall):.4f}")

cells = np.zeros(truth.shape + (3,))
colours = {"TP": (0.2, 0.7, 0.2), "FP": (0.85, 0.2, 0.2), "FN": (0.2, 0.4, 0.9), "TN": (0.93, 0.93, 0.93)}
for name, region in (("TP", pred & truth), ("FP", pred & ~truth), ("FN", ~pred & truth), ("TN", ~pred & ~truth)):
    cells[region] = colours[name]
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(cells); ax.set_xticks([]); ax.set_yticks([]); ax.set_title("pixels by outcome")
ax.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()], list(colours),
          loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Many classes: the confusion matrix
#
# With `K` classes, count pixels by (true class, predicted class) in a `K × K` matrix
# `M`: `M[t, p]` is the number of pixels of class `t` predicted as `p`. For class `k`:
# `TP = M[k, k]`, `FP` = the rest of **column** `k`, `FN` = the rest of **row** `k`. The
# per-class IoUs follow, and their mean over classes is the **mIoU**, the headline number
# of segmentation benchmarks.
#
# To have something to measure we make an imperfect "predictor" for Shapes images, with
# three typical faults built in: outlines blurred as by a stride-8 network, triangles
# taken for squares in every other image, and one object missed entirely.

# %%
from minisegnet import data, viz

shapes = data.Shapes(length=24, image_size=64, split="val", seed=0)
truths = np.stack([shapes[i][1] for i in range(len(shapes))])

def coarse(masks, s=8, K=4):
    onehot = ms.tensor((masks[:, None] == np.arange(K)[None, :, None, None]).astype(np.float32))
    up = F.interpolate(F.avg_pool2d(onehot, s), size=masks.shape[1:], mode="bilinear", align_corners=False)
    return up.numpy().argmax(axis=1)

preds = coarse(truths)
preds[1::2][preds[1::2] == 3] = 2            # triangles called squares in every other image
missed = truths[0] == truths[0].max()
preds[0][missed] = 0                         # one object missed

cm = metrics.ConfusionMatrix(num_classes=4)
cm.update(preds, truths)
print(cm.matrix)
print(cm.table(shapes.classes))
M = cm.matrix.astype(float)
tp, fp, fn = np.diag(M), M.sum(axis=0) - np.diag(M), M.sum(axis=1) - np.diag(M)
print("IoU from the matrix by hand:", np.round(tp / (tp + fp + fn), 4), " compute():", np.round(cm.compute()["IoU"], 4))

# %%
viz.plot_confusion(cm, class_names=shapes.classes)

# %% [markdown]
# Read along a row to see where the pixels of a true class went: most triangle pixels
# ended up in the *square* column. The row-normalised diagonal is each class's accuracy
# (recall). Besides mIoU, tables often report *aAcc*, the share of all pixels labelled
# correctly, which is dominated by the largest class:

# %%
all_background = np.zeros_like(truths)
lazy = metrics.ConfusionMatrix(num_classes=4).update(all_background, truths).compute()
good = cm.compute()
print(f"predict 'background' everywhere: aAcc {lazy['aAcc']:.3f}, mIoU {lazy['mIoU']:.3f}")
print(f"the imperfect predictor:         aAcc {good['aAcc']:.3f}, mIoU {good['mIoU']:.3f}")

# %% [markdown]
# ## 5. Averaging over a dataset: per image or accumulated?
#
# There are two ways to score a whole validation set:
#
# * **accumulated** (dataset-level): add every image's pixels into **one** confusion
#   matrix, then compute IoU per class and average over classes. This is how Pascal VOC,
#   Cityscapes and MMSegmentation report mIoU, and what `ConfusionMatrix` does when you
#   `update` it batch by batch;
# * **per image**: compute an mIoU for every image and average those.
#
# They can differ a lot. Take two images with one circle each: a large circle segmented
# almost perfectly, and a tiny circle missed completely.

# %%
big_truth = disc(50, 50, 30); big_pred = disc(51, 50, 30)          # nearly perfect
small_truth = disc(20, 75, 3); small_pred = np.zeros_like(small_truth)   # missed

pairs = [(big_pred, big_truth), (small_pred, small_truth)]
per_image = [metrics.iou(p, t) for p, t in pairs]
accumulated = metrics.ConfusionMatrix(num_classes=2)
for p, t in pairs:
    accumulated.update(p.astype(np.int64), t.astype(np.int64))
print(f"circle IoU per image: {per_image[0]:.3f} and {per_image[1]:.3f} -> mean {np.mean(per_image):.3f}")
print(f"circle IoU accumulated over both images: {accumulated.compute()['IoU'][1]:.3f}")
print(f"(the missed circle has {small_truth.sum()} pixels, the large one {big_truth.sum()})")


# %% [markdown]
# Accumulated IoU weighs every *pixel* equally: the tiny miss hardly matters. The
# per-image mean weighs every *image* equally: the miss halves the score. Neither is
# wrong, they answer different questions; the accumulated one is the standard, and more
# stable, because per-image scores jump between 0 and 1 on images where a class covers
# a handful of pixels. Per-image averaging also needs a rule for images where a class
# is absent from both truth and prediction (0/0): `ConfusionMatrix` gives NaN, and
# means skip NaNs.
#
# ## 6. Ignored pixels
#
# Annotations are often uncertain at object borders, or whole regions are unlabelled.
# Datasets mark such pixels with a reserved value, **255** in Pascal VOC, and both the
# loss (`F.cross_entropy(..., ignore_index=255)`) and the metrics skip them: whatever
# the network predicts there is neither right nor wrong. `viz.colorize` paints them
# white. We mark a 2-pixel band around every object boundary as ignored, as VOC does,
# and score the blurry predictor from above with and without the band:

# %%
def ignore_boundaries(mask, width=1):
    # 255 on pixels within `width` of a pixel of another class
    out = mask.copy()
    padded = np.pad(mask, width, mode="edge")
    H, W = mask.shape
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            shifted = padded[width + dy:width + dy + H, width + dx:width + dx + W]
            out[shifted != mask] = 255
    return out

ignored = np.stack([ignore_boundaries(t) for t in truths])
print(f"ignored: {100 * (ignored == 255).mean():.1f} % of the pixels")
blurry = coarse(truths)
for name, target in (("every pixel", truths), ("boundaries ignored", ignored)):
    scores = metrics.ConfusionMatrix(num_classes=4, ignore_index=255).update(blurry, target).compute()
    print(f"blurry predictor, {name:>18}: mIoU {scores['mIoU']:.3f}")

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
axes[0].imshow(viz.colorize(truths[2], shapes.palette)); axes[0].set_title("label map")
axes[1].imshow(viz.colorize(ignored[2], shapes.palette)); axes[1].set_title("with 255 (white) borders")
axes[2].imshow(viz.colorize(blurry[2], shapes.palette)); axes[2].set_title("blurry prediction")
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# The blurry predictor's errors sit exactly on the boundaries, so ignoring them raises
# its score: a reminder to compare only numbers computed with the same rules.
#
# ## 7. Dice as a loss
#
# IoU and Dice count pixels, so they have no useful gradient. Replacing the counts with
# **probabilities** gives a differentiable "soft Dice",
# $1 - \frac{2\sum p\,t + \epsilon}{\sum p + \sum t + \epsilon}$ averaged over classes
# (`F.dice_loss`), often added to the cross-entropy when small structures matter (it
# scores every class by its overlap, whatever its size). Its gradient reaches every
# logit; as the logits of a fixed labelling grow more confident, the soft loss
# approaches one minus the mean hard Dice of that labelling (here the imperfect
# predictor's labels on four images):

# %%
target = ms.tensor(truths[:4])
onehot = (preds[:4, None] == np.arange(4)[None, :, None, None]).astype(np.float32)
hard = metrics.ConfusionMatrix(num_classes=4).update(preds[:4], truths[:4]).compute()["mDice"]
for confidence in (1.0, 3.0, 10.0):
    logits = ms.tensor(confidence * (2 * onehot - 1), requires_grad=True)
    loss = F.dice_loss(logits, target)
    loss.backward()
    print(f"logits ±{confidence:>4}: soft Dice loss {loss.item():.4f}   (1 - hard mDice = {1 - hard:.4f}); "
          f"gradient norm {np.linalg.norm(logits.grad.numpy()):.2e}")

# %% [markdown]
# ## 8. Quiz Q2 (and Q3)
#
# **Q2 (syllabus):** two binary masks are generated with
# `a = np.random.randint(2, size=(10, 10))` and `b = np.random.randint(2, size=(10, 10))`.
# Write the code that computes their IoU. Use what this lecture showed: the intersection
# is where *both* are 1, the union where *at least one* is. Fill in `iou` in
# `exercises/q2_iou.py` (0/1 integer or boolean masks, any shape) and run the check.
# (An answer must agree with `metrics.iou`, which you may use below to experiment, but
# not in the exercise.)

# %%
a = np.random.default_rng(1).integers(0, 2, size=(10, 10))
b = np.random.default_rng(2).integers(0, 2, size=(10, 10))
print("library IoU of a and b:", round(metrics.iou(a, b), 4))

from minisegnet.grading import check
check("q2")

# %% [markdown]
# **Q3:** the same for the Dice coefficient, in `exercises/q3_dice.py`:

# %%
check("q3")

# %% [markdown]
# ## Summary
#
# * IoU = |A∩B| / |A∪B| = TP / (TP+FP+FN); Dice = 2|A∩B| / (|A|+|B|) = 2TP / (2TP+FP+FN),
#   the F1 score. For one pair of masks Dice = 2 IoU / (1 + IoU).
# * A `K × K` confusion matrix gives every class's TP (diagonal), FP (column) and FN
#   (row); mIoU averages the per-class IoUs.
# * Benchmarks accumulate one matrix over the whole dataset; averaging per image gives a
#   different, noisier number.
# * Pixels labelled 255 are ignored by the loss and the metrics; pixel accuracy is
#   dominated by the background and says little on its own.
