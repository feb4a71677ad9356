"""Write the lecture notebooks (``lectures/*.ipynb``) from the Python source in this file.

Every lecture is a function that returns its cells, markdown and code, as plain strings,
so that a change to a lecture reads as an ordinary diff of this file. The notebooks are
written *without outputs* (run them in Jupyter, or let ``tests/test_lectures.py`` run
them), and cell ids are derived from the file name and position, so rebuilding an
unchanged lecture leaves the ``.ipynb`` byte for byte the same::

    python lectures/build_notebooks.py            # (re)write every notebook
    python lectures/build_notebooks.py 03 05      # only lectures whose file starts with 03 or 05
    python lectures/build_notebooks.py --check    # exit 1 if a notebook differs from this source

Conventions of the lectures: the first code cell (:data:`SETUP`) finds the repository,
imports the library and seeds it (``ms.manual_seed``), so a notebook gives the same
numbers on every run; every figure is drawn here with matplotlib from computed data;
training runs are tiny (32-64 pixel images, at most a few hundred steps) so that each
notebook runs in about a minute on two CPU cores.
"""
import argparse
import pathlib
import re
import sys
import textwrap

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
LECTURES = {}          # file name -> function returning the list of cells

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

SETUP = r'''
%matplotlib inline
import pathlib, sys, time

# Find the repository (the folder holding minisegnet/) so the notebook runs without installing.
for folder in (pathlib.Path.cwd().resolve(), *pathlib.Path.cwd().resolve().parents):
    if (folder / "minisegnet" / "__init__.py").is_file():
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        break

import numpy as np
import matplotlib.pyplot as plt
import minisegnet as ms
import minisegnet.functional as F
from minisegnet import nn

ms.manual_seed(0)                      # every random draw of the library starts from here
plt.rcParams.update({"figure.dpi": 80, "image.interpolation": "nearest", "axes.titlesize": 10})
'''


# Validation mIoU of longer runs, shown in lecture 4: (dataset, model) -> (steps, mIoU), as printed by
#     python benchmarks/bench_zoo.py --datasets context,context_control
# (Adam, batch 16, poly schedule, seed 0, 96 validation strips; the library at commit bae802c,
# 2 CPU cores). On the context strips FCN labels every blob "car" (boat IoU 0.00, car 0.37),
# PSPNet, DeepLabV3 and DeepLabV3+ tell them apart (boat/car IoU 0.59/0.64, 0.68/0.73 and
# 0.83/0.86). On the control
# FCN still labels every blob "car" after 600 steps (0.00/0.49); PSPNet 0.29/0.60, DeepLabV3 0.49/0.68.
BENCH_ZOO = {
    ("context", "fcn"): (600, 0.670),
    ("context", "pspnet"): (600, 0.843),
    ("context", "deeplabv3"): (600, 0.881),
    ("context", "deeplabv3plus"): (600, 0.937),
    ("context_control", "fcn"): (600, 0.694),
    ("context_control", "pspnet"): (600, 0.775),
    ("context_control", "deeplabv3"): (600, 0.832),
}


def _format_bench(results, datasets):
    lines = ["{"]
    for (dataset, model), (steps, miou) in results.items():
        if dataset not in datasets:
            continue
        value = "float('nan')" if miou != miou else f"{miou:.3f}"
        lines.append(f"            ({dataset!r}, {model!r}): ({steps}, {value}),")
    lines.append("        }")
    return "\n".join(lines)


def md(text):
    """A markdown cell from an indented triple-quoted string."""
    return ("markdown", textwrap.dedent(text).strip("\n"))


def code(text):
    """A code cell from an indented triple-quoted string."""
    return ("code", textwrap.dedent(text).strip("\n"))


def lecture(filename):
    """Register the decorated function as the source of ``lectures/<filename>``."""
    def register(fn):
        LECTURES[filename] = fn
        return fn
    return register


def build(filename):
    """The notebook (an ``nbformat`` node) of one lecture, without outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    stem = filename.split("_")[0]
    for i, (kind, source) in enumerate(LECTURES[filename]()):
        source = re.sub(r"\{BENCH_ZOO:([\w,]+)\}", lambda m: _format_bench(BENCH_ZOO, m.group(1).split(",")), source)
        cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
        cell["id"] = f"l{stem}-{i:03d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(filename):
    return nbformat.writes(build(filename)) + "\n"


# ====================================================================================
@lecture("01_the_task.ipynb")
def lecture_01():
    return [
        md(r"""
        # Lecture 1 — The task: a class for every pixel

        A photograph is a grid of colours. *Semantic segmentation* answers, for **every
        pixel** of that grid, the question "what kind of thing is this?", choosing from a
        list of classes fixed in advance (road, car, person, sky, ...). The answer is an
        image of its own: a *label map* with one class number per pixel.

        In this lecture we

        1. look at images and label maps as arrays, and learn to draw label maps;
        2. compare segmentation with its neighbours: image classification, object
           detection and instance segmentation;
        3. sketch how a convolutional network produces a label map, and
        4. list what per-pixel labels are used for.

        Everything is computed here, with the `minisegnet` library that the later
        lectures open up layer by layer.
        """),
        code(SETUP),
        md(r"""
        ## 1. Images and label maps are arrays

        `minisegnet.data.Shapes` *generates* a small segmentation dataset: circles, squares and
        triangles of random colour on a textured background. Nothing is downloaded, and
        item `i` is the same on every machine. Each item is a pair:

        * the **image**, a float array of shape `(3, H, W)` (channels first, values in [0, 1]);
        * the **mask** (label map), an integer array of shape `(H, W)`: `0` background,
          `1` circle, `2` square, `3` triangle.
        """),
        code(r"""
        from minisegnet import data, viz

        shapes = data.Shapes(length=64, image_size=64, seed=0)
        image, mask = shapes[0]
        print("classes:", shapes.classes)
        print("image:", image.shape, image.dtype, f"values in [{image.min():.2f}, {image.max():.2f}]")
        print("mask: ", mask.shape, mask.dtype, "labels present:", np.unique(mask))
        """),
        md(r"""
        A label map is just numbers. Here is a 12 × 20 window of it, cut around the edge of
        the first object, exactly as the network will have to produce it:
        """),
        code(r"""
        rows, cols = np.nonzero(mask)
        r0 = int(np.clip(rows.min() - 3, 0, mask.shape[0] - 12))
        c0 = int(np.clip(cols[rows == rows.min()][0] - 10, 0, mask.shape[1] - 20))
        window = mask[r0:r0 + 12, c0:c0 + 20]
        print(f"mask[{r0}:{r0 + 12}, {c0}:{c0 + 20}] =")
        print("\n".join(" ".join(str(v) for v in row) for row in window))
        """),
        md(r"""
        To *look* at a label map we give every class a colour, a **palette** of shape
        `(K, 3)`, and index it with the map: `palette[mask]` turns `(H, W)` class numbers into
        an `(H, W, 3)` colour image. `viz.colorize` does exactly that (and paints the special
        label 255, "no label", white); `viz.overlay` blends the colours over the photo.
        """),
        code(r"""
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
        """),
        md(r"""
        The library's plotting helpers draw the same thing for several samples at once.
        `viz.plot_samples` returns a matplotlib `Figure`; a notebook shows it when it is the
        last value of a cell.
        """),
        code(r"""
        viz.plot_samples(shapes, indices=range(4), title="four Shapes samples")
        """),
        md(r"""
        ### Colour alone does not decide the class

        Could a network label each pixel from its colour alone? In this dataset, no: every
        shape draws its colour from the same distribution, so the same colour can be a
        circle in one image and a triangle in the next. Below, for 64 images, the mean colour of
        each object, coloured by its class: the classes are completely mixed. The class of a pixel
        is decided by its **neighbourhood** (curved or straight edges, three or four
        corners), which is why segmentation networks are convolutional: each output
        pixel looks at a window of input pixels around it.
        """),
        code(r"""
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
        """),
        md(r"""
        ### Most pixels are background

        Counting pixels per class over the whole dataset shows a strong imbalance, which
        matters later: a "network" that answers *background* everywhere is right on most
        pixels and still useless. Lecture 6 introduces scores (IoU, Dice) that are not
        fooled by this.
        """),
        code(r"""
        counts = np.zeros(len(shapes.classes), dtype=np.int64)
        for i in range(len(shapes)):
            counts += np.bincount(shapes[i][1].ravel(), minlength=len(shapes.classes))
        fractions = counts / counts.sum()
        for name, f in zip(shapes.classes, fractions):
            print(f"{name:>10}: {100 * f:5.1f} % of the pixels")
        print(f"'all background' would be right on {100 * fractions[0]:.1f} % of the pixels")
        """),
        md(r"""
        ## 2. Segmentation and its neighbours

        Four tasks look at the same scene and answer different questions:

        | task | output | answers |
        |---|---|---|
        | image classification | one label (or a set of labels) for the whole image | *is there a car?* |
        | object detection | a box and a class for every object | *where, roughly, is each car?* |
        | **semantic segmentation** | a class for every pixel | *which pixels are car?* |
        | instance segmentation | a class **and an object id** for every object pixel | *which pixels belong to which car?* |

        Semantic segmentation draws no boxes and **does not separate objects of one class**:
        three cars are all simply *car*. Let us draw a small street scene with three cars,
        two of them overlapping, and one pedestrian, and compute all four answers from its
        drawing.
        """),
        code(r"""
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
        """),
        code(r"""
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
        """),
        md(r"""
        Notice what the semantic map cannot tell: *how many* cars there are. The two
        overlapping cars melt into one region of *car* pixels. Counting the connected regions
        of each map makes this concrete (a small flood fill, written out below):
        """),
        code(r"""
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
        """),
        md(r"""
        Classes like *road* or *sky* are "stuff": amorphous regions that one does not
        count. Classes like *car* or *person* are "things": countable objects. Semantic
        segmentation treats both the same way (a label per pixel); instance segmentation
        separates the things; *panoptic* segmentation does both at once (a class for every
        pixel plus an id for every thing). In this course we stay with semantic
        segmentation.

        ## 3. How a network produces a label map

        A classification network maps an image `(3, H, W)` to `K` class scores. A
        segmentation network maps it to `K` **score maps** `(K, H, W)`: for each pixel a score
        per class. The label map is the class with the highest score, pixel by pixel
        (`argmax` over the class axis). Here the scores are made up, to show the shapes:
        """),
        code(r"""
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
        """),
        md(r"""
        The networks of this course share one layout, shown below with the *real* feature
        shapes of the small ResNet the library uses (`models.resnet_tiny`) on a 64 × 64
        image:

        * an **encoder** (backbone) of convolutions, batch normalisation, ReLUs and
          downsampling. Each stage halves the resolution and adds channels. Early layers
          respond to edges and colours; deep layers, which see large windows of the image,
          respond to whole objects. But they are coarse: at stride 32 a 64 × 64 image is
          2 × 2 feature pixels.
        * a **decoder** (head) that turns the deepest features into class scores and brings
          them back to the image's resolution.

        The network must therefore be *fully convolutional*: no layer may flatten the
        spatial grid away, because the answer is itself a grid. Lecture 3 (FCN) starts
        from exactly this problem; lectures 4 and 5 (PSPNet, DeepLab) are about giving every
        pixel enough *context* without losing resolution.
        """),
        code(r"""
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
        """),
        md(r"""
        ## 4. What per-pixel labels are for

        A box is enough to *count* or *track* objects; a label per pixel is needed whenever
        the exact **extent** of a region matters:

        * **Driving and robotics.** Which part of the ground ahead is drivable road, where the
          kerb is, which pixels are pedestrians. A curving road does not fit in a box.
        * **Medicine.** Outlining an organ or a tumour in a scan; its area (or volume) is
          simply a count of labelled pixels, and treatment may be planned on that outline.
          The Dice score of lecture 6 comes from this field.
        * **Maps from above.** Land cover (water, forest, fields, buildings) in satellite and
          aerial images, flood extent after a storm, building footprints.
        * **People and photos.** Parsing a person into hair, face, skin and clothes; blurring
          or replacing the background of a video call or portrait; cutting an object out of
          a photo (matting refines the border to soft, sub-pixel alpha values).
        * **Agriculture and industry.** Weeds versus crop for targeted spraying, defects on
          a surface, cells in a microscope image.

        ## Summary

        * Segmentation outputs a label map `(H, W)` of class indices, usually as the argmax
          of `K` score maps `(K, H, W)`.
        * A palette turns a label map into a picture: `palette[mask]`.
        * Semantic segmentation separates classes, not objects; instance and panoptic
          segmentation add object ids.
        * A pixel's class depends on its surroundings, so the network must look at
          neighbourhoods (convolutions), and it must keep a spatial grid all the way to the
          output. How that grid is made coarse and then fine again is the subject of the
          next lectures; lecture 2 first opens the engine that computes it.
        """),
    ]


# ====================================================================================
@lecture("02_inside_the_engine.ipynb")
def lecture_02():
    return [
        md(r"""
        # Lecture 2 — Inside the engine: tensors, autograd and convolution

        Every network in this course runs on a small engine written in NumPy (and CuPy on a
        GPU). It has three parts, and this lecture opens each one:

        1. **Tensors** hold an array and remember which operation produced them.
        2. **Autograd** walks those records backwards to compute gradients (reverse-mode
           differentiation, the chain rule applied once per operation).
        3. **Kernels** do the heavy array work. The most important one is convolution, which
           we write three ways (a naive loop, *im2col* plus one matrix product, and the
           library's per-tap products), check against finite differences, and time.
        """),
        code(SETUP),
        md(r"""
        ## 1. Tensors

        A `Tensor` wraps an array (`.data`, a NumPy array on the CPU) and mirrors PyTorch's
        interface: `.shape`, `.dtype`, arithmetic, `.sum()`, `.relu()`, `@`, indexing, ...
        Floating tensors created with `requires_grad=True` are *leaves* whose gradient we want.
        """),
        code(r"""
        x = ms.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        print(x)
        print("shape", x.shape, "| dtype", x.dtype, "| requires_grad", x.requires_grad, "| data is a", type(x.data).__name__)
        y = (x * x).sum()
        print("y =", y.item(), "| produced by the op", y._node.fn.__name__)
        y.backward()
        print("dy/dx = 2x =\n", x.grad.numpy())
        """),
        md(r"""
        ## 2. A tiny graph, by hand and by autograd

        Take two numbers `a = 2`, `b = -3` and compute

        $$u = a\,b,\qquad v = e^{a},\qquad s = u + v,\qquad L = s^2 .$$

        Every operation creates a new tensor whose `._node` records the operation (its
        `Function`) and its inputs. Those records form a graph from the leaves to `L`. Below we
        draw the graph from those records, before calling `backward()`, which consumes them.
        """),
        code(r"""
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
        """),
        md(r"""
        `L.backward()` visits the nodes from `L` back to the leaves (a topological order), and
        at each node calls its Function's `backward`, which turns the gradient of its output
        into gradients of its inputs. By the chain rule, with $\partial L/\partial s = 2s$:

        $$\frac{\partial L}{\partial a} = 2s\,(b + e^{a}), \qquad \frac{\partial L}{\partial b} = 2s\,a .$$

        Note that `a` feeds two operations (`Mul` and `Exp`): its gradient is the **sum** over
        both paths, which the engine accumulates.
        """),
        code(r"""
        L.backward()
        s_val, a_val, b_val = s.item(), a.item(), b.item()
        print(f"autograd: dL/da = {a.grad.item():.6f}, dL/db = {b.grad.item():.6f}")
        print(f"by hand:  dL/da = {2 * s_val * (b_val + np.exp(a_val)):.6f}, dL/db = {2 * s_val * a_val:.6f}")
        """),
        md(r"""
        Two switches complete the picture. Inside `with ms.no_grad():` nothing is recorded
        (evaluation, parameter updates), and `t.detach()` gives a tensor that shares the data
        but is cut from the graph.

        ## 3. Writing an operation: a `Function`

        Each op of the library is a subclass of `ms.Function` with a `forward` and a `backward`
        next to each other. Unlike PyTorch, both see **raw arrays** (NumPy or CuPy), so an op is
        plain array code:

        * `forward(ctx, *inputs)` computes the output and saves on `ctx` what backward needs;
        * `backward(ctx, grad_out)` receives $\partial L/\partial y$ and returns a tuple with
          one gradient per positional input ($\partial L/\partial x$, or `None`).

        As an example, the SiLU activation $y = x\,\sigma(x)$, with
        $\frac{dy}{dx} = \sigma(x)\,\bigl(1 + x\,(1 - \sigma(x))\bigr)$:
        """),
        code(r"""
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
        """),
        md(r"""
        ### Checking a backward pass

        A backward formula is easy to get subtly wrong. `ms.gradcheck(fn, *inputs)` compares
        it with **central finite differences**,
        $\frac{\partial L}{\partial x_i} \approx \frac{L(x + \varepsilon e_i) - L(x - \varepsilon e_i)}{2\varepsilon}$,
        for every input element, in float64 (in float32 the rounding error of the difference
        would swamp it). It returns `True` or raises an error that names the first element
        that disagrees. Here is the correct SiLU and a version that forgot one term:
        """),
        code(r"""
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
        """),
        md(r"""
        ## 4. Convolution

        A convolution layer with weight `w` of shape `(O, C, k, k)` computes, for every output
        channel `o` and position `(i, j)`, a dot product between the weight and the `k × k`
        window of all `C` input channels under it:

        $$y[o, i, j] = \sum_{c,\,u,\,v} w[o, c, u, v]\; x[c,\; i s + u d - p,\; j s + v d - p]$$

        (stride `s`, dilation `d`, zero padding `p`; the kernel is not flipped). Along each axis
        the output has $\lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1$ pixels.

        ### im2col: a convolution is one matrix product

        Copy every window into a column of a *patch matrix* `cols` of shape
        `(C·k·k, H_out·W_out)`. Reshape the weight into a matrix `(O, C·k·k)`. Then
        `w_matrix @ cols` is the output, `(O, H_out·W_out)`. Here is the idea with loops,
        on one image (stride 1, no padding), and a picture of `cols` for a 5 × 5 input whose
        pixels are numbered 1..25:
        """),
        code(r"""
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
        """),
        md(r"""
        Output pixel `(1, 2)` is the dot product of the weight row with column 5 of `cols`,
        which holds exactly the window outlined on the input. With several channels and
        images the same product holds image by image. We compare against the library's
        `F.conv2d`:
        """),
        code(r"""
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, 3, 7, 7))
        w = rng.standard_normal((4, 3, 3, 3))
        ours = np.stack([(w.reshape(4, -1) @ im2col_loops(x[n], 3)).reshape(4, 5, 5) for n in range(2)])
        library = F.conv2d(ms.tensor(x), ms.tensor(w)).numpy()
        print("im2col vs F.conv2d, max |difference|:", np.abs(ours - library).max())
        """),
        md(r"""
        ### The price of im2col, and how the library avoids it

        `cols` holds every input value `k·k` times: for a 3 × 3 convolution of a 256-channel,
        64 × 64 float32 map that is 37.7 MB of copies of a 4.2 MB input. Look at `cols` row by
        row instead: the row of tap `(u, v)` is just the input *shifted* by `(u, v)`. So the
        same product splits into one small product per tap,

        $$y = \sum_{u,v} W_{uv}\; X_{uv}, \qquad W_{uv} = w[:, :, u, v] \in \mathbb{R}^{O\times C},\quad X_{uv} = \text{the input shifted by } (u, v),$$

        and each $X_{uv}$ can be a *slice* of the input rather than a copy. This is how the
        library's kernel (`minisegnet/kernels/conv.py`) works: `k·k` matrix products on
        shifted views, taps that would read only padding skipped, a batch split over CPU
        threads. Per tap, in a few lines:
        """),
        code(r"""
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
        """),
        md(r"""
        **Exercise Q5.** `exercises/q5_conv2d_im2col.py` asks for the full version: padding,
        stride and dilation, a whole batch, and `cols` built with one strided slice per
        kernel tap instead of a loop over output pixels. Run the cell after editing the file
        (it only reports, it never stops the notebook):
        """),
        code(r"""
        from minisegnet.grading import check
        check("q5")
        """),
        md(r"""
        ### The backward pass of a convolution

        A convolution is linear in its input, $y = A x$, so its input gradient is
        $A^{\mathsf T} g$: it sends each output's gradient back to the pixels of its window.
        That transposed map is itself a convolution-like op, the **transposed convolution**
        (`F.conv_transpose2d`, the upsampling layer of FCN in lecture 3). The weight gradient
        correlates the input with the output gradient. `gradcheck` confirms both, here with
        stride, padding and dilation all in play:
        """),
        code(r"""
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
        """),
        md(r"""
        ## 5. How fast?

        Python executes a loop iteration in about a microsecond or more; NumPy and the BLAS
        library behind `@` execute billions of multiply-adds per second. The whole game of
        writing kernels in Python is to keep loops *short* (over the 9 kernel taps, not over
        millions of pixels) and hand the long loops to compiled code. We time four versions
        of a 3 × 3 convolution on the same input: a naive loop over output pixels, im2col with a
        loop-built patch matrix, the per-tap products, and the library's kernel, and PyTorch's
        when it is installed. Every contestant gets **one CPU thread**, so that the comparison
        measures the code, not how many cores happen to be free (threads are restored after
        the timings).
        """),
        code(r"""
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

        macs = N * O * C * 9 * (S - 2) ** 2
        timings = {name: best_time(fn, repeats=1 if name == "naive loops" else 5) for name, fn in candidates.items()}
        for name, seconds in timings.items():
            print(f"{name:>26}: {1e3 * seconds:8.2f} ms   {2 * macs / seconds / 1e9:7.3f} GFLOP/s")

        fig, ax = plt.subplots(figsize=(6.5, 2.8))
        ax.barh(list(timings), [1e3 * t for t in timings.values()], color="tab:blue")
        ax.set_xscale("log"); ax.set_xlabel("milliseconds (log scale)"); ax.invert_yaxis()
        ax.set_title(f"3×3 conv, input {N}×{C}×{S}×{S}, {O} output channels")
        plt.show()
        """),
        md(r"""
        On a layer the size of a real network's, only the vectorised versions remain
        practical. The library's kernel also computes the backward products in the same
        way, and the training runs of the next lectures are made of thousands of these calls.
        """),
        code(r"""
        N, C, O, S = 8, 32, 32, 32
        xb = rng.standard_normal((N, C, S, S)).astype(np.float32)
        wb = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
        xt, wt = ms.tensor(xb), ms.tensor(wb)
        big = {
            "per-tap products": lambda: [conv_by_taps(xb[n], wb) for n in range(N)],
            "minisegnet F.conv2d": lambda: F.conv2d(xt, wt, padding=1),
        }
        if torch is not None:
            xtorch, wtorch = torch.from_numpy(xb), torch.from_numpy(wb)
            big["PyTorch conv2d"] = lambda: torch.nn.functional.conv2d(xtorch, wtorch, padding=1)
        macs = N * O * C * 9 * S * S
        for name, fn in big.items():
            seconds = best_time(fn, repeats=5)
            print(f"{name:>22}: {1e3 * seconds:7.2f} ms   {2 * macs / seconds / 1e9:6.2f} GFLOP/s")

        conv_kernels.set_num_threads(None)             # back to the defaults
        if blas_limit is not None:
            blas_limit.restore_original_limits()
        if torch is not None:
            torch.set_num_threads(torch_threads)
        """),
        md(r"""
        ## Summary

        * A `Tensor` is an array plus a record of the op that made it; `backward()` walks the
          records in reverse and applies each op's `backward`, summing over paths.
        * A new op is a `Function` with `forward`/`backward` on raw arrays; `ms.gradcheck`
          verifies the pair against finite differences.
        * A convolution is a matrix product on a patch matrix (im2col); splitting it by kernel
          tap gives the same result without the `k·k`-fold copy, which is what the library
          does. Its backward pass is a transposed convolution.
        """),
    ]


# ====================================================================================
@lecture("03_fcn.ipynb")
def lecture_03():
    return [
        md(r"""
        # Lecture 3 — FCN: making a classifier fully convolutional

        The Fully Convolutional Network (FCN, Long, Shelhamer and Darrell, 2015) was the first
        network trained end to end to label every pixel. Its recipe has three ingredients,
        and this lecture builds and checks each one:

        1. **Classifier layers become convolutions.** A fully connected layer is a
           convolution, so a classification network can slide over an image of any size and
           output a grid of class scores instead of one vector.
        2. **The grid is coarse.** After several strided layers, one output cell covers
           `output_stride × output_stride` image pixels; we measure what that costs.
        3. **Learnable upsampling.** A *transposed convolution*, initialised to bilinear
           interpolation, brings the scores back to the image's size.

        Then we train a small FCN on the Shapes dataset and look at its predictions.
        """),
        code(SETUP),
        md(r"""
        ## 1. A fully connected layer is a 1 × 1 convolution

        A classifier typically ends with *global average pooling* (one `C`-vector per image)
        and a `Linear(C, K)` layer. Both steps are linear, so they can be swapped: applying the
        same `Linear` to **every pixel's** feature vector first gives `K` score maps, and
        averaging those maps gives the classifier's scores again. Applying one matrix to
        every pixel's channel vector is exactly a `1 × 1` convolution whose weight is the
        Linear weight reshaped to `(K, C, 1, 1)`.
        """),
        code(r"""
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
        """),
        md(r"""
        Classic networks (AlexNet, VGG) instead *flatten* a fixed `C × 7 × 7` feature block
        into their first fully connected layer. That layer, too, is a convolution: with a
        `7 × 7` kernel. On a `7 × 7` map both give one output; on a larger map the convolution
        **slides**, producing the classifier's answer for every `7 × 7` window: a grid of
        predictions from one pass, with the overlapping work shared. This is the step that
        turned classification networks into dense predictors.
        """),
        code(r"""
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
        """),
        md(r"""
        ## 2. Output stride: how coarse is the grid?

        The *output stride* (OS) is the number of image pixels per step of the feature grid. A
        classification backbone halves the resolution five times: OS 32. A 224 × 224 image
        gives 7 × 7 scores; our 64 × 64 images would give 2 × 2.

        What is the **best** a prediction at stride `s` could possibly do? Take the true mask,
        average its one-hot encoding over each `s × s` cell (the most a cell can know), upsample
        those class fractions bilinearly back to full size, and take the argmax. No network
        is involved; this is the upper bound that the resolution alone sets:
        """),
        code(r"""
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
            print(f"output stride {s:>2}: grid {128 // s:>3} x {128 // s:<3}  best possible mIoU {bounds[s]:.3f}")

        image, mask = big_shapes[0]
        fig, axes = plt.subplots(1, len(strides) + 2, figsize=(15, 2.9))
        axes[0].imshow(image.transpose(1, 2, 0)); axes[0].set_title("image 128×128")
        axes[1].imshow(viz.colorize(mask, big_shapes.palette)); axes[1].set_title("ground truth")
        for ax, s in zip(axes[2:], strides):
            ax.imshow(viz.colorize(best_at_stride(mask[None], s)[0], big_shapes.palette))
            ax.set_title(f"best from OS {s} ({128 // s}×{128 // s})")
        for ax in axes:
            ax.axis("off")
        plt.show()
        """),
        md(r"""
        At OS 32 corners are rounded off and small shapes vanish; at OS 8 the outline is nearly
        right. The two families of fixes, used by every network in this course:

        * **keep the resolution** inside the backbone: replace the last strides by *dilated*
          convolutions (DeepLab, lecture 5). The library's backbones do this with
          `output_stride=8` or `16`, and its `fcn` model uses OS 8 by default;
        * **recover the resolution** in a decoder with skip connections from earlier,
          finer layers (FCN-16s/8s below, DeepLabV3+ in lecture 5).

        ## 3. Transposed convolution: learnable upsampling

        A stride-`s` convolution *gathers*: every output pixel is a weighted sum over a window
        of the input. Its transpose *scatters*: every **input** pixel stamps a copy of the kernel,
        scaled by its value, onto the output, `s` pixels apart; where stamps overlap they add.
        Below, each of four input pixels stamps the same 3 × 3 kernel with stride 2, and the
        output is the sum of the stamps.
        """),
        code(r"""
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
        """),
        md(r"""
        Along each axis the output size is $H_{out} = (H - 1)\,s - 2p + k + \text{output\_padding}$,
        the inverse of the convolution's size formula. The name comes from linear algebra: if
        a convolution is the matrix $A$ ($y = Ax$), the transposed convolution with the same
        weight is $A^{\mathsf T}$. So for any `x` and `y`, $\langle A x, y\rangle = \langle x, A^{\mathsf T} y\rangle$,
        which we can check numerically. (This is also why it is the backward pass of a
        convolution, lecture 2.)
        """),
        code(r"""
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
        """),
        md(r"""
        **Exercise Q10.** Write the scatter yourself in `exercises/q10_transposed_conv.py`
        (stamp, add, crop the padding) and check it here:
        """),
        code(r"""
        from minisegnet.grading import check
        check("q10")
        """),
        md(r"""
        ### Starting as bilinear interpolation

        FCN initialises its upsampling layers so that they *begin* as plain bilinear
        interpolation, and training may then refine them. The right kernel for factor `s` is
        `k = 2s` wide, a "tent" that falls off linearly with distance, and each channel maps
        only to itself. `nn.init.bilinear_` writes it. We compare the result with
        `F.interpolate(..., mode="bilinear", align_corners=False)`:
        """),
        code(r"""
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
        """),
        md(r"""
        Away from the border the two are **identical** (up to float32 rounding). On a border of
        `s/2` pixels they differ:
        the transposed convolution treats the outside of the image as zeros (the image
        fades towards its edge), while `F.interpolate` repeats the edge pixel. Networks in this
        library therefore use `F.interpolate` for their fixed final upsampling, and keep
        transposed convolutions where the upsampling should be learned (FCN-8s).

        **Exercise Q6.** Bilinear resizing by hand, with both `align_corners` conventions:
        """),
        code(r"""
        check("q6")
        """),
        md(r"""
        ## 4. FCN-32s, -16s, -8s and the library's FCNs

        The original FCN-32s upsamples the stride-32 scores in one step of 32. FCN-16s first
        upsamples them ×2, **adds** scores computed from the stride-16 features (a 1 × 1
        convolution of `pool4`), and upsamples the sum ×16; FCN-8s repeats this once more with
        `pool3`. The deep layers say *what*; the shallow ones say *where* exactly. The library
        has both styles:

        * `models.create("fcn8s", K)`: a small VGG with exactly this skip architecture and
          bilinear-initialised transposed convolutions;
        * `models.create("fcn", K)`: a ResNet made dilated to output stride 8 with an
          `FCNHead` (two 3 × 3 ConvModules, a concatenation with the input, and a 1 × 1
          classifier), then a bilinear resize to the image. This is how modern toolboxes
          build "FCN", and it is the baseline of the next lectures.
        """),
        code(r"""
        from minisegnet import models

        fcn8s = models.create("fcn8s", num_classes=4)
        fcn = models.create("fcn", num_classes=4).eval()
        print(fcn.decode_head)
        for name, model in (("fcn8s", fcn8s), ("fcn", fcn)):
            feats = model.backbone(ms.zeros(1, 3, 64, 64))
            params = sum(p.numel() for p in model.parameters())
            print(f"{name:>6}: {params:,} parameters; backbone feature sizes",
                  [tuple(f.shape[2:]) for f in feats], "; strides", model.backbone.strides)
        """),
        md(r"""
        The whole forward pass of `fcn` is three lines: the backbone returns its multi-level
        features, the head decodes the deepest one (`c4`), and a bilinear resize brings the
        scores to the image's size. Written out by hand it gives exactly what the model gives:
        """),
        code(r"""
        x = ms.randn(2, 3, 64, 64)
        with ms.no_grad():
            c1, c2, c3, c4 = fcn.backbone(x)                    # strides 4, 8, 8, 8 (dilated)
            scores = fcn.decode_head([c1, c2, c3, c4])          # FCNHead reads c4: (N, K, 8, 8)
            logits = F.interpolate(scores, size=x.shape[2:], mode="bilinear", align_corners=False)
            print("c4", c4.shape, "-> head", scores.shape, "-> resized", logits.shape)
            print("same as fcn(x):", np.allclose(logits.numpy(), fcn(x).numpy(), atol=1e-6))
        """),
        md(r"""
        ## 5. The loss: cross-entropy at every pixel

        Training compares the score maps `(N, K, H, W)` with the label map `(N, H, W)` by the
        softmax cross-entropy **of each pixel**, averaged over pixels:
        $\;\ell = -\frac{1}{|P|}\sum_{p \in P} \log \operatorname{softmax}(z_p)_{y_p}$.
        Pixels labelled with the *ignore index* (255, "unknown" in datasets like Pascal VOC) are
        left out of the sum and of the count `|P|`. `F.cross_entropy` implements this; a
        small case by hand:
        """),
        code(r"""
        logits = ms.tensor(np.random.default_rng(0).standard_normal((1, 3, 2, 2)), dtype=ms.float64)
        target = ms.tensor([[[0, 2], [255, 1]]])                           # one pixel ignored
        z = logits.numpy()[0]
        log_probs = z - np.log(np.exp(z).sum(axis=0, keepdims=True))
        by_hand = -np.mean([log_probs[t, r, c] for (r, c), t in np.ndenumerate(target.numpy()[0]) if t != 255])
        print("F.cross_entropy:", F.cross_entropy(logits, target, ignore_index=255).item(), "  by hand:", by_hand)
        """),
        md(r"""
        **Exercise Q9.** A numerically stable pixel-wise cross-entropy with an ignore index:
        """),
        code(r"""
        check("q9")
        """),
        md(r"""
        ## 6. Training an FCN on Shapes

        A training step is the loop every framework runs: forward pass and loss, `backward()`
        for the gradients of all parameters, an optimizer step (Adam here), and a learning-rate
        schedule (the "poly" decay, $lr = lr_0 (1 - t/T)^{0.9}$). To keep this lecture to a
        minute on a CPU we train on 32 × 32 images with at most two, fairly large shapes, for
        300 steps; `minisegnet train` runs the full-size version.
        """),
        code(r"""
        from minisegnet import optim
        from minisegnet.train import evaluate

        SHAPES = dict(image_size=32, max_shapes=2, size_range=(0.25, 0.35))
        STEPS, BATCH = 300, 16
        train_set = data.Shapes(length=STEPS * BATCH, split="train", seed=0, **SHAPES)
        val_set = data.Shapes(length=96, split="val", seed=0, **SHAPES)

        def train(model, steps=STEPS, lr=6e-3):
            optimizer = optim.Adam(model.parameters(), lr=lr)
            schedule = optim.PolyLR(optimizer, total_iters=steps, power=0.9)
            loader = data.DataLoader(train_set, batch_size=BATCH, shuffle=True, seed=0, drop_last=True)
            losses, start = [], time.perf_counter()
            model.train()
            for step, (images, masks) in zip(range(steps), loader):
                loss = model.loss(images, masks)["loss"]     # pixel-wise cross-entropy
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
            return losses, time.perf_counter() - start

        ms.manual_seed(0)
        model = models.create("fcn", num_classes=4)
        losses, seconds = train(model)
        cm = evaluate(model, data.DataLoader(val_set, batch_size=32), num_classes=4)
        print(f"trained {STEPS} steps in {seconds:.0f} s; validation:")
        print(cm.table(val_set.classes))
        """),
        code(r"""
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
        axes[0].plot(losses, color="0.75", lw=0.8, label="per step")
        axes[0].plot(np.convolve(losses, np.ones(20) / 20, mode="valid"), label="mean of 20 steps")
        axes[0].set_xlabel("step"); axes[0].set_ylabel("cross-entropy"); axes[0].legend(); axes[0].set_title("training loss")
        iou = cm.compute()["IoU"]
        axes[1].bar(val_set.classes, iou, color=val_set.palette / 255, edgecolor="0.3")
        axes[1].set_ylim(0, 1); axes[1].set_title(f"validation IoU per class (mIoU {np.nanmean(iou):.2f})")
        plt.show()

        model.eval()
        images, masks = next(iter(data.DataLoader(val_set, batch_size=4)))
        viz.plot_predictions(images, masks, model.predict(images), class_names=val_set.classes,
                             palette=val_set.palette, max_images=4, title="FCN after 300 steps")
        """),
        md(r"""
        The background and the object outlines are learned first; telling circles, squares
        and triangles apart takes longer, because it needs the *shape* of a whole object, a
        context of many pixels. The next two lectures are about giving every pixel more
        context: pooling at several scales (PSPNet) and dilated convolutions (DeepLab).

        ## Summary

        * `Linear` on a pooled vector == `1 × 1` convolution at every pixel, then pooling; a
          flattened `k × k` block into `Linear` == a `k × k` convolution. Replacing them makes a
          classifier *fully convolutional*: any input size, a grid of scores out.
        * The grid has the backbone's output stride; OS 32 loses the fine structure even for a
          perfect network, OS 8 mostly keeps it.
        * A transposed convolution scatters kernel stamps; it is the transpose (adjoint) of a
          convolution, and with the bilinear kernel it equals bilinear upsampling away from the
          border.
        * Training minimises the per-pixel cross-entropy, skipping ignored pixels.
        """),
    ]


# ====================================================================================
@lecture("04_pspnet.ipynb")
def lecture_04():
    return [
        md(r"""
        # Lecture 4 — PSPNet: context from a pyramid of pooled features

        Some pixels cannot be labelled by looking at their neighbourhood. A boat and a car
        may look alike; what tells them apart is the *scene*: water around one, road around
        the other. The Pyramid Scene Parsing Network (PSPNet, Zhao et al., 2017) gives every
        pixel a summary of the whole image, and of its quarters, ninths and thirty-sixths,
        through its **pyramid pooling module**.

        In this lecture we

        1. build the pooling grids of *adaptive* average pooling, including sizes that do not
           divide evenly;
        2. follow the shapes through the pyramid pooling module;
        3. meet a dataset made to need context (boats and cars that differ only by what lies
           far below them), and measure, without any training, that an FCN *cannot* see that
           far while PSPNet can: receptive field versus distance to the cue;
        4. train both briefly, and compare with longer, measured runs.
        """),
        code(SETUP),
        md(r"""
        ## 1. Adaptive average pooling

        Ordinary pooling fixes the *window* (say 2 × 2, stride 2) and the output size follows
        from the input. Adaptive pooling fixes the **output** size `s × s` and chooses the
        windows: along an axis of length `n`, output `i` averages the input range

        $$\Bigl[\,\bigl\lfloor i\,n/s \bigr\rfloor,\; \bigl\lceil (i+1)\,n/s \bigr\rceil\Bigr).$$

        When `s` divides `n` the bins tile the axis exactly; otherwise neighbouring bins
        **overlap** by a pixel, and all have (nearly) equal length. The library computes these
        ranges in `kernels.pooling.adaptive_bins`. Below, for the grids PSPNet uses (1, 2, 3
        and 6 bins per side) over a 10 × 10 feature map, where 3 and 6 do not divide 10: the
        bins along one axis (top), and the 2-d bins with, in every feature pixel, the number of
        bins that average it (bottom).
        """),
        code(r"""
        from minisegnet.kernels.pooling import adaptive_bins

        n = 10
        fig, axes = plt.subplots(2, 4, figsize=(14, 6.2), gridspec_kw={"height_ratios": [1, 2.3]})
        for col, s in enumerate((1, 2, 3, 6)):
            bins = adaptive_bins(n, s)
            ax = axes[0, col]
            for i, (a, b) in enumerate(bins):
                ax.barh(i, b - a, left=a - 0.5, height=0.8, color=plt.cm.tab10(i % 10), alpha=0.75)
                ax.text((a + b - 1) / 2, i, f"[{a}, {b})", ha="center", va="center", fontsize=7)
            ax.set_xlim(-0.5, n - 0.5); ax.set_ylim(s - 0.5, -0.5)
            ax.set_xticks(range(n)); ax.set_yticks([]); ax.set_title(f"{s} bin{'s' if s > 1 else ''} per side")
            cover = np.zeros((n, n), dtype=int)
            for r0, r1 in bins:
                for c0, c1 in bins:
                    cover[r0:r1, c0:c1] += 1
            ax = axes[1, col]
            ax.imshow(cover, cmap="Blues", vmin=0, vmax=5)
            for (r, c), v in np.ndenumerate(cover):
                ax.text(c, r, v, ha="center", va="center", fontsize=7)
            for i, (r0, r1) in enumerate(bins):
                for j, (c0, c1) in enumerate(bins):
                    ax.add_patch(plt.Rectangle((c0 - 0.45, r0 - 0.45), c1 - c0 - 0.1, r1 - r0 - 0.1, fill=False,
                                               ec=plt.cm.tab10((i * s + j) % 10), lw=1.5))
            ax.set_xticks([]); ax.set_yticks([])
        fig.tight_layout()
        plt.show()
        for s in (1, 2, 3, 6):
            print(f"bins of {n} -> {s}:", adaptive_bins(n, s))
        """),
        md(r"""
        `F.adaptive_avg_pool2d(x, s)` is exactly the mean over those bins, which we can check
        bin by bin:
        """),
        code(r"""
        rng = np.random.default_rng(0)
        x = ms.tensor(rng.standard_normal((2, 3, 10, 7)))
        for s in ((3, 3), (6, 4)):
            pooled = F.adaptive_avg_pool2d(x, s).numpy()
            by_hand = np.array([[[[x.numpy()[b, c, r0:r1, c0:c1].mean()
                                   for c0, c1 in adaptive_bins(7, s[1])]
                                  for r0, r1 in adaptive_bins(10, s[0])]
                                 for c in range(3)] for b in range(2)])
            print(f"adaptive_avg_pool2d to {s}: shape {pooled.shape}, equal to the bin means: {np.allclose(pooled, by_hand)}")
        """),
        md(r"""
        **Exercise Q7.** Compute the bins and the adaptive average pooling yourself:
        """),
        code(r"""
        from minisegnet.grading import check
        check("q7")
        """),
        md(r"""
        ## 2. The pyramid pooling module

        For each bin size `s` in (1, 2, 3, 6), PSPNet

        1. average-pools the feature map to `s × s` (a summary of each region),
        2. reduces the channels to `C/4` with a 1 × 1 ConvModule (conv + BN + ReLU),
        3. upsamples the result bilinearly back to the map's `h × w`,

        and concatenates the four results **with the input**: every pixel keeps its own
        features and gains four summaries, from "the whole image" (1 × 1) to "its
        neighbourhood" (6 × 6). The fine bins describe small objects and local layout, the
        coarse ones large objects and the scene as a whole. To see what the branches carry,
        here is the pooling and upsampling applied to an image itself:
        """),
        code(r"""
        from minisegnet import data, models, viz

        strips = data.ContextStrips(length=200, split="val", seed=0)
        water = next(i for i in range(len(strips)) if strips[i][1][-1, 0] == 1)     # bottom row labelled water
        road = next(i for i in range(len(strips)) if strips[i][1][-1, 0] == 2)
        fig, axes = plt.subplots(1, 12, figsize=(12, 6.5))
        for k, index in enumerate((water, road)):
            image, mask = strips[index]
            img = ms.tensor(image[None])
            axes[6 * k].imshow(image.transpose(1, 2, 0)); axes[6 * k].set_title("image", fontsize=9)
            axes[6 * k + 1].imshow(viz.colorize(mask, strips.palette)); axes[6 * k + 1].set_title("labels", fontsize=9)
            for ax, s in zip(axes[6 * k + 2:6 * k + 6], (1, 2, 3, 6)):
                pooled = F.adaptive_avg_pool2d(img, s)
                back = F.interpolate(pooled, size=image.shape[1:], mode="bilinear", align_corners=False)
                ax.imshow(np.clip(back.numpy()[0].transpose(1, 2, 0), 0, 1)); ax.set_title(f"pool {s}", fontsize=9)
        for ax in axes:
            ax.axis("off")
        plt.show()

        # does the 1x1 summary of a whole strip know the scene? blue minus red of the strip's mean colour
        tint = {1: [], 2: []}
        for i in range(len(strips)):
            image, mask = strips[i]
            mean = F.adaptive_avg_pool2d(ms.tensor(image[None]), 1).numpy().ravel()
            tint[int(mask[-1, 0])].append(mean[2] - mean[0])
        print(f"blue - red of the 1x1 summary: water strips {np.mean(tint[1]):+.3f} ± {np.std(tint[1]):.3f}, "
              f"road strips {np.mean(tint[2]):+.3f} ± {np.std(tint[2]):.3f}")
        """),
        md(r"""
        The 1 × 1 branch paints the whole strip in its average colour, and that average
        carries a trace of the band: over 200 strips a water band shifts it towards blue. So
        the scene reaches every pixel, including the objects at the top. The real module pools
        learned *features* rather than colours, where the trace can be made as strong as
        training needs. The library's `models.PyramidPooling` is
        this module; we follow a batch through it (the 128 channels and 8 × 8 map are what
        `resnet_tiny` gives at output stride 8 for a 64 × 64 image):
        """),
        code(r"""
        ppm = models.PyramidPooling(in_channels=128, sizes=(1, 2, 3, 6)).eval()
        feats = ms.randn(2, 128, 8, 8)
        with ms.no_grad():
            print(f"{'input':>24}: {feats.shape}")
            branches = [feats]
            for s, pool, conv in zip(ppm.sizes, ppm.avgpools, ppm.convs):
                pooled = pool(feats)
                reduced = conv(pooled)
                up = F.interpolate(reduced, size=(8, 8), mode="bilinear", align_corners=False)
                print(f"{f'branch {s}x{s}':>12}: pool {pooled.shape} -> 1x1 conv {reduced.shape} -> up {up.shape}")
                branches.append(up)
            out = ppm(feats)
            print(f"{'concatenated':>24}: {out.shape}   (matches the module: {np.allclose(out.numpy(), F.cat(branches, dim=1).numpy())})")

        pspnet = models.create("pspnet", num_classes=5)
        print("\nPSPHead: pyramid pooling ->", pspnet.decode_head.bottleneck.conv, "-> classifier", pspnet.decode_head.conv_seg)
        """),
        md(r"""
        **Exercise Q8.** Write `PyramidPooling.forward` (pool, reduce, upsample, concatenate in
        the right order):
        """),
        code(r"""
        check("q8")
        """),
        md(r"""
        ## 3. A dataset that needs context

        `data.ContextStrips` generates tall strips, 256 × 32 pixels. In the top 30 % float one
        to three blobs; the bottom eighth is a band of **water** (blue, wavy) or of **road**
        (grey, dashed). A blob is a *boat* over water and a *car* over road, and boats and cars
        are drawn from exactly the same shapes and colours: nothing near a blob says which it
        is. The band is at least 147 pixels below every blob. In the *control* variant
        (`context_control`) boats and cars have different shapes (hulls versus upright
        rectangles), so local appearance suffices.
        """),
        code(r"""
        control = data.ContextStrips(length=200, split="val", seed=0, control=True)
        idx = range(6)
        images = np.stack([strips[i][0] for i in idx] + [control[i][0] for i in idx])
        masks = np.stack([strips[i][1] for i in idx] + [control[i][1] for i in idx])
        fig, axes = plt.subplots(2, 12, figsize=(13, 9))
        for j in range(12):
            axes[0, j].imshow(images[j].transpose(1, 2, 0))
            axes[1, j].imshow(viz.colorize(masks[j], strips.palette))
            axes[0, j].set_title("context" if j < 6 else "control", fontsize=8)
        for ax in axes.ravel():
            ax.axis("off")
        handles = [plt.Rectangle((0, 0), 1, 1, color=strips.palette[k] / 255) for k in range(5)]
        fig.legend(handles, strips.classes, loc="lower center", ncol=5, frameon=False)
        plt.show()
        """),
        md(r"""
        ## 4. Receptive field versus the distance to the cue

        The **receptive field** of an output pixel is the set of input pixels that can change
        it. For a chain of convolutions and poolings it follows from the kernel size `k`,
        stride `s` and dilation `d` of each layer: the field grows by $(k-1)\,d$ steps of the
        current *jump* $j$ (the product of the strides so far),

        $$r \leftarrow r + (k - 1)\,d\,j, \qquad j \leftarrow j\,s, \qquad r_0 = 1,\; j_0 = 1 .$$

        We walk the layers of the library's FCN (ResNet-tiny at output stride 8, then the
        FCN head) in order; the 1 × 1 shortcut convolutions are parallel paths and add nothing:
        """),
        code(r"""
        def receptive_field(model):
            r, j, rows = 1, 1, []
            for name, m in model.named_modules():
                if isinstance(m, (nn.Conv2d, nn.MaxPool2d)) and "downsample" not in name:
                    pair = lambda v: v[0] if isinstance(v, tuple) else v
                    k, s, d = pair(m.kernel_size), pair(m.stride), pair(m.dilation)
                    r, j = r + (k - 1) * d * j, j * s
                    rows.append((name, k, s, d, j, r))
            return r, rows

        fcn = models.create("fcn", num_classes=5).eval()
        rf, rows = receptive_field(fcn)
        print(f"{'layer':<30}{'k':>3}{'s':>3}{'d':>3}{'jump':>6}{'field':>7}")
        for name, k, s, d, j, r in rows:
            print(f"{name:<30}{k:>3}{s:>3}{d:>3}{j:>6}{r:>7}")
        print(f"\nFCN receptive field: {rf} pixels, i.e. {rf // 2} above and below a pixel; the cue is >= 147 away")
        """),
        md(r"""
        The theoretical field reaches 145 pixels up and down: just short of the 147 pixels to the
        band (and in practice the edge of a receptive field contributes almost nothing). We can
        **measure** what an output depends on, with autograd: back-propagate the *boat* score
        of the blob pixels to the image and look where the gradient is non-zero. And we can
        run the decisive experiment: **swap the band** (water for road) under the same blobs
        and see which outputs change. No training is needed, because *which* pixels can
        influence an output is fixed by the architecture (the models are in eval mode, so
        BatchNorm does not mix the images of a batch).
        """),
        code(r"""
        image, mask = strips[0]
        band_top = int(round(strips.BAND_START * image.shape[1]))
        other = next(i for i in range(1, len(strips)) if strips[i][1][-1, 0] != mask[-1, 0])
        swapped = image.copy()
        swapped[:, band_top:] = strips[other][0][:, band_top:]          # same blobs, the other scene below
        blobs = mask >= 3

        ms.manual_seed(0)
        nets = {"FCN": models.create("fcn", num_classes=5).eval(), "PSPNet": models.create("pspnet", num_classes=5).eval()}
        fig, axes = plt.subplots(1, 6, figsize=(12, 7), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1, 2.6]})
        axes[0].imshow(image.transpose(1, 2, 0)); axes[0].set_title("strip")
        axes[1].imshow(swapped.transpose(1, 2, 0)); axes[1].set_title("band swapped")
        for col, (name, net) in enumerate(nets.items()):
            x = ms.tensor(image[None], requires_grad=True)
            logits = net(x)
            (logits[0, 3] * ms.tensor(blobs.astype(np.float32))).sum().backward()   # boat score on the blobs
            reach = np.abs(x.grad.numpy()[0]).sum(axis=0)
            with ms.no_grad():
                change = np.abs(net(ms.tensor(swapped[None])).numpy()[0] - logits.numpy()[0]).max(axis=0)
            axes[2 + col].imshow(np.log10(reach + 1e-12), cmap="magma", vmin=np.log10(reach.max()) - 6)
            axes[2 + col].axhline(band_top, color="cyan", lw=1)
            axes[2 + col].set_title(f"{name} gradient")
            axes[5].semilogx(change.max(axis=1) + 1e-12, np.arange(len(change)), label=name)
            print(f"{name:>6}: gradient reaches the band: {reach[band_top:].sum() > 0};  "
                  f"largest change of a blob pixel's scores when the band is swapped: {change[blobs].max():.2e}")
        axes[4].imshow(viz.colorize(mask, strips.palette)); axes[4].set_title("labels")
        axes[5].invert_yaxis(); axes[5].axhline(band_top, color="cyan", lw=1, label="band starts")
        axes[5].axhspan(0, np.nonzero(blobs)[0].max(), color="orange", alpha=0.2, label="blob rows")
        axes[5].set_xlabel("max |change of scores| in the row (0 drawn at 1e-12)"); axes[5].set_ylabel("row")
        axes[5].legend(fontsize=8)
        axes[5].set_title("which rows notice the swap?")
        for ax in axes[:5]:
            ax.axis("off")
        fig.tight_layout()
        plt.show()
        """),
        md(r"""
        For the FCN the answer is exact: the blob pixels' scores do not change **at all** when
        the scene below is swapped, and their gradient stops before the band. Whatever its
        weights, this FCN must *guess* between boat and car, and it can do no better than
        chance on that decision. PSPNet's 1 × 1 (and 2 × 2) pooling branches carry information
        from every pixel to every pixel, so its blob scores move with the band: it *can* learn
        the rule. (DeepLabV3's image-pooling branch does the same, lecture 5.)

        **Exercise Q4.** Output sizes and receptive fields of stacked convolutions, by formula:
        """),
        code(r"""
        check("q4")
        """),
        md(r"""
        ## 5. Training both

        Now the same short training for both models: same seed, data, steps and optimizer.
        The blobs cover only about 2 % of the pixels, and with a budget of 60 steps a
        network would first learn to ignore them; so their pixels weigh 10 times more in the
        cross-entropy (`F.cross_entropy(..., weight=...)`, the usual remedy for rare classes).
        Besides the IoUs, we measure the decision that matters here: among the blob pixels
        that a model labels *boat* or *car*, the share with the right one of the two. Guessing
        gives 50 %.
        """),
        code(r"""
        from minisegnet import optim
        from minisegnet.train import evaluate

        STEPS, BATCH = 60, 8
        train_strips = data.ContextStrips(length=STEPS * BATCH, split="train", seed=0)
        val_strips = data.ContextStrips(length=48, split="val", seed=0)
        class_weight = ms.tensor([1.0, 1.0, 1.0, 10.0, 10.0])          # background, water, road, boat, car

        def train(name, steps=STEPS, lr=5e-3):
            ms.manual_seed(0)
            model = models.create(name, num_classes=5)
            optimizer = optim.Adam(model.parameters(), lr=lr)
            schedule = optim.PolyLR(optimizer, total_iters=steps)
            model.train()
            start = time.perf_counter()
            for images, masks in data.DataLoader(train_strips, batch_size=BATCH, shuffle=True, seed=0, drop_last=True):
                loss = F.cross_entropy(model(images), masks, weight=class_weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
            seconds = time.perf_counter() - start
            return model, evaluate(model, data.DataLoader(val_strips, batch_size=16), num_classes=5), seconds

        live = {}
        for name in ("fcn", "pspnet"):
            live[name] = train(name)
            model, cm, seconds = live[name]
            scores = cm.compute()
            blob = cm.matrix[3:, 3:]                       # truth boat/car (rows) x prediction boat/car (columns)
            per_class = ", ".join(f"{c} {v:.2f}" for c, v in zip(strips.classes, scores["IoU"]))
            print(f"{name:>7}: mIoU {scores['mIoU']:.3f} after {STEPS} steps ({seconds:.0f} s) [{per_class}]")
            print(f"         boat-or-car decided right on {100 * np.trace(blob) / max(blob.sum(), 1):.0f} % of the blob pixels")
        """),
        code(r"""
        images, masks = next(iter(data.DataLoader(val_strips, batch_size=6)))
        predictions = {name: model.eval().predict(images).numpy() for name, (model, _, _) in live.items()}
        fig, axes = plt.subplots(1, 24, figsize=(14, 5.6))
        for i in range(6):
            panels = [("img", images.numpy()[i].transpose(1, 2, 0)), ("truth", viz.colorize(masks.numpy()[i], strips.palette)),
                      ("FCN", viz.colorize(predictions["fcn"][i], strips.palette)),
                      ("PSP", viz.colorize(predictions["pspnet"][i], strips.palette))]
            for p, (title, picture) in enumerate(panels):
                axes[4 * i + p].imshow(picture)
                axes[4 * i + p].set_title(title, fontsize=8)
        for ax in axes:
            ax.axis("off")
        handles = [plt.Rectangle((0, 0), 1, 1, color=strips.palette[k] / 255) for k in range(5)]
        fig.legend(handles, strips.classes, loc="lower center", ncol=5, frameon=False)
        fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.08)
        plt.show()
        """),
        md(r"""
        Both models find the band and the blobs. FCN has to give every blob the same guess
        (whatever is more common in its training batches), right in about half the cases;
        PSPNet has learned to read the band. Longer runs, without class weights, measured
        with `benchmarks/bench_zoo.py` (same budget for every model: Adam, batch 16, poly
        schedule, seed 0; validation on 96 strips), on the context strips and on the control:
        """),
        code(r"""
        # (dataset, model): (steps, validation mIoU), from python benchmarks/bench_zoo.py --datasets context,context_control
        MEASURED = {BENCH_ZOO:context,context_control}
        print(f"{'dataset':<18}{'model':<12}{'steps':>6}{'mIoU':>8}")
        for (dataset, model), (steps, miou) in MEASURED.items():
            print(f"{dataset:<18}{model:<12}{steps:>6}{miou:>8.3f}")

        datasets = sorted({d for d, _ in MEASURED}, reverse=True)
        names = ["fcn", "pspnet", "deeplabv3"]
        fig, ax = plt.subplots(figsize=(6, 3))
        for i, name in enumerate(names):
            values = [MEASURED.get((d, name), (0, np.nan))[1] for d in datasets]
            ax.bar(np.arange(len(datasets)) + 0.27 * (i - 1), values, width=0.27, label=name)
        ax.set_xticks(range(len(datasets)), datasets); ax.set_ylabel("validation mIoU"); ax.set_ylim(0, 1)
        ax.legend(); ax.set_title("same budget, measured")
        plt.show()
        for d in datasets:
            lead = {m: MEASURED[(d, m)][1] - MEASURED[(d, "fcn")][1] for m in ("pspnet", "deeplabv3")}
            print(f"{d:>16}: lead over FCN: PSPNet {lead['pspnet']:+.3f}, DeepLabV3 {lead['deeplabv3']:+.3f}")
        """),
        md(r"""
        The heads with a global branch lead on both datasets. On the control, where a blob's own
        shape gives its class away, nothing stops FCN in principle; it is simply slower to
        learn hulls versus rectangles than the others, and after 600 steps it still calls every
        blob a car. On the context strips the lead is about **twice as large**: that extra part
        is what only context can provide, and what the live experiment above isolates: with
        the band out of its receptive field, FCN's boat-or-car decisions stay at chance however
        long it trains.

        ## Summary

        * Adaptive average pooling fixes the output grid; bin `i` of `s` over `n` inputs spans
          $[\lfloor i n/s\rfloor, \lceil (i+1) n/s\rceil)$, with overlaps when `s` does not divide `n`.
        * PSPNet's pyramid pooling module concatenates the features with their 1 × 1, 2 × 2,
          3 × 3 and 6 × 6 summaries (each reduced to `C/4` channels and upsampled): `2C`
          channels, global to regional context at every pixel.
        * A pixel's prediction can only depend on its receptive field. When the deciding cue is
          farther away, a plain FCN cannot use it, and no amount of training helps; global
          pooling can.
        """),
    ]


# ====================================================================================
@lecture("05_deeplab.ipynb")
def lecture_05():
    return [
        md(r"""
        # Lecture 5 — DeepLab: atrous convolution and ASPP

        FCN lost resolution to strides and won it back with a decoder; PSPNet added global
        context by pooling. DeepLab (Chen et al., 2017-2018) attacks both problems with one
        tool, the **atrous** (dilated) convolution: a convolution whose kernel taps are spread
        apart. It lets a network

        * keep its feature maps large (output stride 16 or 8 instead of 32) while every layer
          still sees as far as it did before, and
        * look at several scales at once, with parallel branches of different dilation
          rates: **A**trous **S**patial **P**yramid **P**ooling (ASPP, DeepLabV3).

        DeepLabV3+ then adds a light decoder that brings back fine detail from early features.
        We build each piece, check it numerically, count what it costs, and end with the
        syllabus quiz Q1 and a small comparison of all the models so far.
        """),
        code(SETUP),
        md(r"""
        ## 1. Atrous convolution: the same nine weights, spread out

        A 3 × 3 convolution with dilation rate `d` reads the input at offsets
        $\{-d, 0, d\}^2$ around each output pixel. With `d = 1` that is an ordinary 3 × 3 window;
        with `d = 2` the nine taps cover a 5 × 5 area, with `d = 3` a 7 × 7 area, skipping the
        pixels in between ("à trous": with holes). The weights are the same nine numbers in
        every case.
        """),
        code(r"""
        fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
        for ax, d in zip(axes, (1, 2, 3)):
            grid = np.zeros((9, 9))
            span = 2 * d + 1
            lo = 4 - d
            grid[lo:lo + span, lo:lo + span] = 0.25                 # the area the kernel covers
            ax.imshow(grid, cmap="Blues", vmin=0, vmax=1)
            for n, (u, v) in enumerate([(u, v) for u in (-1, 0, 1) for v in (-1, 0, 1)]):
                r, c = 4 + u * d, 4 + v * d
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, color="tab:orange"))
                ax.text(c, r, f"w{n + 1}", ha="center", va="center", fontsize=9)
            ax.set_xticks(np.arange(-0.5, 9, 1), []); ax.set_yticks(np.arange(-0.5, 9, 1), [])
            ax.grid(color="0.7", lw=0.5)
            ax.set_title(f"dilation {d}: 9 taps cover {span}×{span}")
        plt.show()

        for d in (1, 2, 3):
            conv = nn.Conv2d(16, 16, kernel_size=3, dilation=d, padding=d)
            params = sum(p.numel() for p in conv.parameters())
            out = conv(ms.zeros(1, 16, 20, 20))
            print(f"dilation {d}: weight {conv.weight.shape}, {params} parameters, output {out.shape} (padding=d keeps the size)")
        """),
        md(r"""
        ### The same as a convolution with a zero-filled kernel

        Conceptually, dilation spreads the kernel out to size $d(k-1)+1$ and fills the gaps
        with zeros; then an ordinary convolution runs. The numbers agree exactly. An efficient
        implementation never multiplies by the zeros, of course: the library's kernel does one
        product per *real* tap, 9 for any `d`, instead of $(2d+1)^2$.
        """),
        code(r"""
        rng = np.random.default_rng(0)
        x = ms.tensor(rng.standard_normal((2, 4, 15, 15)))
        w = ms.tensor(rng.standard_normal((3, 4, 3, 3)))
        fig, axes = plt.subplots(1, 3, figsize=(9, 3))
        for ax, d in zip(axes, (1, 2, 3)):
            spread = np.zeros((3, 4, 2 * d + 1, 2 * d + 1))
            spread[:, :, ::d, ::d] = w.numpy()                                # zeros between the taps
            dilated = F.conv2d(x, w, padding=d, dilation=d)
            zero_filled = F.conv2d(x, ms.tensor(spread), padding=d)
            print(f"d={d}: dilated conv == conv with the {2 * d + 1}x{2 * d + 1} zero-filled kernel:",
                  np.allclose(dilated.numpy(), zero_filled.numpy()),
                  f"| multiply-adds per output and channel pair: 9 vs {(2 * d + 1) ** 2}")
            ax.imshow(spread[0, 0], cmap="coolwarm", vmin=-2, vmax=2)
            ax.set_title(f"zero-filled kernel, d={d}"); ax.set_xticks([]); ax.set_yticks([])
        plt.show()
        """),
        md(r"""
        ### Stacking dilated layers

        Three 3 × 3 layers see a 7 × 7 window. With dilations 1, 2, 4 the same three layers see
        15 × 15, with no extra weights. But dilation must be chosen with care: three layers all
        with `d = 2` see 13 × 13 and yet only every other pixel, a checkerboard of holes
        ("gridding"). Here is, computed with autograd, which input pixels reach one output
        pixel through each stack (weights all one):
        """),
        code(r"""
        def reach(dilations, size=21):
            x = ms.zeros(1, 1, size, size, dtype=ms.float64, requires_grad=True)
            y = x
            for d in dilations:
                y = F.conv2d(y, ms.ones(1, 1, 3, 3, dtype=ms.float64), padding=d, dilation=d)
            y[0, 0, size // 2, size // 2].backward()
            return x.grad.numpy()[0, 0]

        fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
        for ax, dilations in zip(axes, [(1, 1, 1), (1, 2, 4), (2, 2, 2)]):
            r = reach(dilations)
            ax.imshow(r > 0, cmap="Greens")
            extent = np.nonzero(r.sum(axis=0))[0]
            ax.set_title(f"dilations {dilations}: field {extent[-1] - extent[0] + 1}×{extent[-1] - extent[0] + 1}, "
                         f"{int((r > 0).sum())} pixels", fontsize=9)
            ax.set_xticks([]); ax.set_yticks([])
        plt.show()
        """),
        md(r"""
        ## 2. Output stride by dilation

        A classification ResNet reaches output stride 32 by striding in its stages 2, 3 and
        4. DeepLab **removes** the last strides and **dilates** every later convolution by the
        stride it removed, so each kernel still covers the same image area: for output stride
        16, stage 4 has stride 1 and dilation 2; for output stride 8, stage 3 has dilation 2
        and stage 4 dilation 4. Pretrained weights stay valid, since no weight changes shape.
        The library's backbones take `output_stride`:
        """),
        code(r"""
        from minisegnet import models

        image = ms.zeros(1, 3, 64, 64)
        costs = {}
        for os_ in (32, 16, 8):
            backbone = models.resnet_tiny(output_stride=os_).eval()
            with ms.no_grad():
                feats = backbone(image)
            params = sum(p.numel() for p in backbone.parameters())
            rows = models.profile(backbone, input_size=(1, 3, 64, 64))
            stages = {}
            for r in rows:
                stage = r["name"].split(".")[0] if r["name"].startswith("layer") else "stem"
                stages[stage] = stages.get(stage, 0) + r["macs"]
            costs[os_] = stages
            print(f"OS {os_:>2}: strides {backbone.strides}, dilations {backbone.dilations}, "
                  f"features {[tuple(f.shape[2:]) for f in feats]}, {params:,} parameters, "
                  f"{sum(stages.values()) / 1e6:.1f} M multiply-adds")
        """),
        md(r"""
        DeepLabV3 goes one step further inside the last stage: its blocks use *different*
        rates, a "Multi-Grid" of factors times the stage's dilation, so that consecutive layers
        do not sample the same checkerboard (the gridding seen above). The library's ResNets
        take `multi_grid`, one factor per block of stage 4. (In the papers the backbone is
        pretrained on ImageNet; `models.create(..., pretrained=...)` loads torchvision
        weights, but in these lectures we train from scratch.)
        """),
        code(r"""
        r18 = models.resnet18(output_stride=16, multi_grid=(1, 2))
        for i, block in enumerate(r18.layer4):
            print(f"ResNet-18 at OS 16, multi-grid (1, 2): stage 4, block {i}: dilation {block.conv1.dilation}")
        """),
        md(r"""
        The parameter count is identical at every output stride: dilation adds no weights. The
        cost is not: `models.summary` (and `models.profile`, which it prints) counts
        multiply-accumulates, and at output stride 8 stage 4 works on 16 times as many
        pixels as at stride 32. To separate the two effects, one 3 × 3 layer at dilation 1 and
        4 on the same map, and on a map twice as large:
        """),
        code(r"""
        fig, ax = plt.subplots(figsize=(6, 3))
        bottom = np.zeros(3)
        for stage in ("stem", "layer1", "layer2", "layer3", "layer4"):
            values = np.array([costs[o].get(stage, 0) / 1e6 for o in (32, 16, 8)])
            ax.bar(["OS 32", "OS 16", "OS 8"], values, bottom=bottom, label=stage)
            bottom += values
        ax.set_ylabel("million multiply-adds"); ax.set_title("resnet_tiny on a 64×64 image"); ax.legend(fontsize=8)
        plt.show()

        def macs(module, size):
            return sum(r["macs"] for r in models.profile(module, input_size=(1, 64, size, size)))

        for d, size in [(1, 16), (4, 16), (1, 32)]:
            layer = nn.Sequential(nn.Conv2d(64, 64, 3, padding=d, dilation=d, bias=False))
            print(f"3x3 conv, 64 -> 64 channels, dilation {d}, on {size}x{size}: {macs(layer, size):>12,} multiply-adds")
        print()
        print(models.summary(nn.Sequential(nn.Conv2d(64, 64, 3, padding=4, dilation=4, bias=False)), (1, 64, 16, 16)))
        """),
        md(r"""
        ## 3. ASPP: several rates in parallel

        Objects come in many sizes, so DeepLabV3 looks at every pixel of the stride-8 (or 16)
        features through parallel branches, and concatenates them:

        * a 1 × 1 ConvModule (rate 1),
        * three 3 × 3 atrous ConvModules with rates (6, 12, 18) at OS 16, doubled to
          (12, 24, 36) at OS 8 so that they cover the same image area
          (`models.aspp_dilations`),
        * an **image-pool** branch: global average pooling, a 1 × 1 ConvModule, and a bilinear
          resize back: the whole image's summary at every pixel, as in PSPNet's 1 × 1 bin.

        A 3 × 3 ConvModule (`bottleneck`) fuses the `(rates + 1) × channels` maps and the
        classifier follows. The shapes, for the tiny ResNet at OS 8 on 64 × 64 images:
        """),
        code(r"""
        print("ASPP rates by output stride:", {o: models.aspp_dilations(o) for o in (32, 16, 8)})
        head = models.ASPPHead(dilations=(1, 12, 24, 36), in_channels=128, channels=64, num_classes=4).eval()
        feats = ms.randn(2, 128, 8, 8)
        with ms.no_grad():
            pooled = head.image_pool(feats)
            branches = [F.interpolate(pooled, size=(8, 8), mode="bilinear", align_corners=False)]
            print(f"{'features':>22}: {feats.shape}")
            print(f"{'image pool':>22}: {pooled.shape} -> resized {branches[0].shape}")
            for d, branch in zip(head.dilations, head.aspp_modules):
                branches.append(branch(feats))
                kind = "1x1" if d == 1 else f"3x3, rate {d}"
                print(f"{'ASPP ' + kind:>22}: {branches[-1].shape}")
            fused = head.bottleneck(F.cat(branches, dim=1))
            print(f"{'concatenated':>22}: {F.cat(branches, dim=1).shape} -> bottleneck {fused.shape}")
            print(f"{'classifier':>22}: {head.conv_seg(fused).shape}   (head output {head(feats).shape})")
        """),
        md(r"""
        Why the image-pool branch? On a small map a large rate reads mostly **padding**. On the
        8 × 8 map above, the taps of a rate-36 kernel all fall outside the map except the
        centre one: the branch degenerates into a 1 × 1 convolution. Counting, for each rate,
        the share of the nine taps that land inside the map (over all output pixels):
        """),
        code(r"""
        def valid_tap_share(rate, size):
            offsets = np.array([-rate, 0, rate])
            pos = np.arange(size)
            inside = ((pos[:, None] + offsets[None, :]) >= 0) & ((pos[:, None] + offsets[None, :]) < size)
            per_axis = inside.mean(axis=0)                     # share of positions where each offset is inside
            return float(np.outer(per_axis, per_axis).mean())

        rates = (1, 3, 6, 12, 24, 36)
        fig, ax = plt.subplots(figsize=(6, 2.8))
        for size in (8, 32, 64):
            ax.plot(rates, [valid_tap_share(r, size) for r in rates], marker="o", label=f"{size}×{size} map")
        ax.axhline(1 / 9, color="0.6", ls="--", lw=0.8, label="only the centre tap")
        ax.set_xlabel("dilation rate"); ax.set_ylabel("taps inside the map"); ax.legend(fontsize=8)
        plt.show()
        """),
        md(r"""
        Hence the image-pool branch: it delivers truly global context however small the map,
        which the widest atrous branch no longer can.

        ## 4. Quiz Q1: the forward pass of the ASPP head

        The syllabus asks to complete `ASPPHead.forward` of DeepLabV3, MMSegmentation style.
        Open `exercises/q1_aspp_forward.py`: the constructor is given (`image_pool`,
        `aspp_modules`, `bottleneck`, `cls_seg`), and `forward` must

        1. run the image-pool branch and resize it (bilinear, with `self.align_corners`) to
           the feature map's size,
        2. append the outputs of the ASPP branches (in the order of the rates),
        3. concatenate everything along the channels and fuse it with `self.bottleneck`,

        leaving the result in `output` for `cls_seg`. The grader compares your head with the
        library's on the same weights: inputs of odd sizes, lists of feature maps, training
        mode and gradients. Edit the file, then run:
        """),
        code(r"""
        from minisegnet.grading import check
        check("q1")
        """),
        md(r"""
        ## 5. DeepLabV3+: a decoder for the details

        At OS 8 or 16 boundaries are still blurred by the final ×8 or ×16 resize. DeepLabV3+
        keeps the ASPP encoder and adds a small decoder:

        1. the ASPP output is upsampled to the resolution of the **stride-4** features `c1`
           from the first backbone stage;
        2. `c1` is first reduced to few channels by a 1 × 1 ConvModule (48 in the paper, 16
           here) so that the low-level detail does not drown the semantics;
        3. the two are concatenated and refined by two 3 × 3 **depthwise-separable**
           ConvModules, then classified, and the result is upsampled ×4 to the image.

        Its ASPP branches are depthwise separable too (a 3 × 3 convolution per channel, then a
        1 × 1 convolution mixing channels), which makes large heads affordable. The shapes:
        """),
        code(r"""
        plus = models.create("deeplabv3plus", num_classes=4).eval()
        head = plus.decode_head
        with ms.no_grad():
            c1, c2, c3, c4 = plus.backbone(ms.randn(2, 3, 64, 64))
            print(f"backbone: c1 {c1.shape} (stride 4), c4 {c4.shape} (stride 8)")
            pooled = F.interpolate(head.image_pool(c4), size=c4.shape[2:], mode="bilinear", align_corners=False)
            aspp = head.bottleneck(F.cat([pooled] + head.aspp_modules(c4), dim=1))
            print(f"ASPP encoder output: {aspp.shape}")
            low = head.c1_bottleneck(c1)
            up = F.interpolate(aspp, size=c1.shape[2:], mode="bilinear", align_corners=False)
            print(f"c1 reduced: {low.shape};  ASPP upsampled to c1: {up.shape}")
            merged = F.cat([up, low], dim=1)
            refined = head.sep_bottleneck(merged)
            print(f"concatenated: {merged.shape} -> two separable 3x3 ConvModules: {refined.shape}")
            print(f"classifier: {head.conv_seg(refined).shape} -> resized to the image: {plus(ms.randn(2, 3, 64, 64)).shape}")

        def n_params(module):
            return sum(p.numel() for p in module.parameters())

        v3 = models.create("deeplabv3", num_classes=4)
        print(f"\nASPP branch rate 12: plain {n_params(v3.decode_head.aspp_modules[1]):,} parameters, "
              f"depthwise separable {n_params(head.aspp_modules[1]):,}")
        print(f"whole model: DeepLabV3 {n_params(v3):,} parameters, DeepLabV3+ {n_params(plus):,}")
        """),
        md(r"""
        ## 6. FCN, PSPNet and DeepLabV3 side by side

        The three models share the backbone (`resnet_tiny` at OS 8) and differ only in the head.
        We train each for the same 250 steps on the same small Shapes images (32 × 32, at most
        two shapes) with the same seed. On 32 × 32 images the OS-8 features are only 4 × 4, so
        the default rates (12, 24, 36) would reduce every atrous branch to its centre tap (see
        above); we pass rates scaled to the map, `dilations=(1, 2, 3)`. On Shapes a pixel's
        class is decided by the shape around it, well inside every model's receptive field, so
        no head has a principled advantage; with this small budget the differences between
        them are of the order of the run-to-run noise.
        """),
        code(r"""
        from minisegnet import data, optim, viz
        from minisegnet.train import evaluate

        SHAPES = dict(image_size=32, max_shapes=2, size_range=(0.25, 0.35))
        STEPS, BATCH = 250, 16
        train_set = data.Shapes(length=STEPS * BATCH, split="train", seed=0, **SHAPES)
        val_set = data.Shapes(length=96, split="val", seed=0, **SHAPES)
        train_items = [train_set[i] for i in range(len(train_set))]    # generate once, reuse for every model
        val_loader = data.DataLoader(val_set, batch_size=32)

        def train(name, **kwargs):
            ms.manual_seed(0)
            model = models.create(name, num_classes=4, **kwargs)
            optimizer = optim.Adam(model.parameters(), lr=6e-3)
            schedule = optim.PolyLR(optimizer, total_iters=STEPS)
            model.train()
            start = time.perf_counter()
            for images, masks in data.DataLoader(train_items, batch_size=BATCH, shuffle=True, seed=0, drop_last=True):
                loss = model.loss(images, masks)["loss"]
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
            seconds = time.perf_counter() - start
            return model, evaluate(model, val_loader, num_classes=4).compute(), seconds

        runs = {
            "FCN": train("fcn"),
            "PSPNet": train("pspnet"),
            "DeepLabV3": train("deeplabv3", dilations=(1, 2, 3)),
        }
        print(f"| model | parameters | val mIoU | circle | square | triangle | train time (s) |")
        print(f"|---|---:|---:|---:|---:|---:|---:|")
        for name, (model, scores, seconds) in runs.items():
            iou = scores["IoU"]
            print(f"| {name} | {n_params(model):,} | {scores['mIoU']:.3f} | {iou[1]:.2f} | {iou[2]:.2f} | {iou[3]:.2f} | {seconds:.0f} |")
        """),
        code(r"""
        images, masks = next(iter(data.DataLoader(val_set, batch_size=5)))
        fig, axes = plt.subplots(5, 2 + len(runs), figsize=(2 * (2 + len(runs)), 10))
        for i in range(5):
            axes[i, 0].imshow(images.numpy()[i].transpose(1, 2, 0))
            axes[i, 1].imshow(viz.colorize(masks.numpy()[i], val_set.palette))
            for j, (name, (model, _, _)) in enumerate(runs.items()):
                axes[i, 2 + j].imshow(viz.colorize(model.eval().predict(images[i:i + 1]).numpy()[0], val_set.palette))
                if i == 0:
                    axes[i, 2 + j].set_title(name)
        axes[0, 0].set_title("image"); axes[0, 1].set_title("truth")
        for ax in axes.ravel():
            ax.axis("off")
        plt.show()
        """),
        md(r"""
        Where the heads really differ is context. Longer runs on the strips of lecture 4,
        measured with `benchmarks/bench_zoo.py` (every model 600 steps, batch 16, Adam, poly
        schedule, seed 0): the heads with a global branch (pyramid pooling, ASPP's image pool)
        are far ahead of FCN, and DeepLabV3+, whose decoder restores the outline of the small
        blobs from stride-4 features, is best.
        """),
        code(r"""
        # (dataset, model): (steps, validation mIoU), from python benchmarks/bench_zoo.py
        MEASURED = {BENCH_ZOO:context,context_control}
        print(f"| dataset | model | steps | val mIoU |")
        print(f"|---|---|---:|---:|")
        for (dataset, model), (steps, miou) in MEASURED.items():
            print(f"| {dataset} | {model} | {steps} | {miou:.3f} |")
        """),
        md(r"""
        ## Summary

        * A 3 × 3 convolution with dilation `d` covers $(2d+1)^2$ pixels with 9 weights; it
          equals a convolution with a zero-filled kernel, without the zeros' cost.
        * Removing strides and dilating later layers gives output stride 16 or 8 with the
          same weights; parameters stay, multiply-adds grow with the number of feature pixels.
        * ASPP concatenates a 1 × 1 branch, atrous branches at several rates and a global
          image-pool branch, and fuses them with a 3 × 3 bottleneck (quiz Q1). Large rates on
          small maps degenerate to 1 × 1, which is why the image-pool branch is there.
        * DeepLabV3+ adds a decoder that merges the upsampled ASPP output with reduced
          stride-4 features, using depthwise-separable convolutions.
        """),
    ]


# ====================================================================================
@lecture("06_metrics.ipynb")
def lecture_06():
    return [
        md(r"""
        # Lecture 6 — Measuring a segmentation: IoU, Dice and the confusion matrix

        A good segmentation *overlaps* the truth: its predicted region for a class and the true
        region should coincide. Two overlap scores dominate the field:

        $$\mathrm{IoU}(A, B) = \frac{|A \cap B|}{|A \cup B|} \quad\text{(Jaccard index)}, \qquad
          \mathrm{Dice}(A, B) = \frac{2\,|A \cap B|}{|A| + |B|} \quad\text{(Dice coefficient)},$$

        where `A` is the set of predicted pixels of a class, `B` the true ones, and `|·|` counts
        pixels. Both are 0 for disjoint regions and 1 for a perfect match. In this lecture we
        draw them, relate them, rewrite them with true/false positives, extend them to many
        classes with the confusion matrix, and look at three details that change reported
        numbers: how to average, ignored pixels, and class imbalance. The syllabus quiz Q2 is
        at the end.
        """),
        code(SETUP),
        md(r"""
        ## 1. Two discs

        The truth `B` is a disc, and the prediction `A` is a slightly smaller disc, shifted.
        We shade the intersection and the union, count their pixels, and compare the library's
        `metrics.iou` / `metrics.dice` with the formulas:
        """),
        code(r"""
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
        """),
        md(r"""
        Sliding the prediction across the truth shows how both scores fall with the overlap,
        Dice always above IoU:
        """),
        code(r"""
        shifts = np.arange(0, 61, 3)
        ious = [metrics.iou(disc(48, 42 + s, 26), truth) for s in shifts]
        dices = [metrics.dice(disc(48, 42 + s, 26), truth) for s in shifts]
        fig, ax = plt.subplots(figsize=(5.5, 3))
        ax.plot(shifts, ious, marker="o", label="IoU"); ax.plot(shifts, dices, marker="s", label="Dice")
        ax.set_xlabel("shift of an equal disc (pixels)"); ax.set_ylabel("score"); ax.legend()
        plt.show()
        """),
        md(r"""
        ## 2. Dice and IoU measure the same thing

        Since $|A| + |B| = |A \cup B| + |A \cap B|$, writing $I = |A \cap B|$ and $U = |A \cup B|$,

        $$\mathrm{Dice} = \frac{2I}{U + I} = \frac{2\,(I/U)}{1 + I/U} = \frac{2\,\mathrm{IoU}}{1 + \mathrm{IoU}},
          \qquad \mathrm{IoU} = \frac{\mathrm{Dice}}{2 - \mathrm{Dice}} .$$

        For a *single* pair of masks one is a fixed increasing function of the other: they rank
        predictions identically, and Dice ≥ IoU with equality only at 0 and 1. We verify the
        identity on many random pairs of masks:
        """),
        code(r"""
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
        """),
        md(r"""
        The *averages* over many images or classes are a different matter: the mean of Dice
        scores is not a function of the mean of IoU scores, so tables report one or the other
        (or both), never a conversion.

        ## 3. True positives, false positives, false negatives

        For one class, every pixel falls in one of four cells: predicted and true (**TP**),
        predicted but not true (**FP**), true but missed (**FN**), neither (**TN**). Then
        $|A \cap B| = TP$, $|A| = TP + FP$, $|B| = TP + FN$, and

        $$\mathrm{IoU} = \frac{TP}{TP + FP + FN}, \qquad \mathrm{Dice} = \frac{2\,TP}{2\,TP + FP + FN} .$$

        Neither uses TN: a huge, correctly ignored background does not inflate the score.
        Dice is also the F1 score: the harmonic mean of precision $TP/(TP+FP)$ and recall
        $TP/(TP+FN)$.
        """),
        code(r"""
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
        ax.imshow(cells); ax.set_xticks([]); ax.set_yticks([])
        ax.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()], list(colours), loc="lower right", fontsize=8)
        plt.show()
        """),
        md(r"""
        ## 4. Many classes: the confusion matrix

        With `K` classes, count pixels by (true class, predicted class) in a `K × K` matrix
        `M`: `M[t, p]` is the number of pixels of class `t` predicted as `p`. For class `k`:
        `TP = M[k, k]`, `FP` = the rest of **column** `k`, `FN` = the rest of **row** `k`. The
        per-class IoUs follow, and their mean over classes is the **mIoU**, the headline number
        of segmentation benchmarks.

        To have something to measure we make an imperfect "predictor" for Shapes images, with
        three typical faults built in: outlines blurred as by a stride-8 network, triangles
        taken for squares in every other image, and one object missed entirely.
        """),
        code(r"""
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
        """),
        code(r"""
        viz.plot_confusion(cm, class_names=shapes.classes)
        """),
        md(r"""
        Read along a row to see where the pixels of a true class went: most triangle pixels
        ended up in the *square* column. The row-normalised diagonal is each class's accuracy
        (recall). Besides mIoU, tables often report *aAcc*, the share of all pixels labelled
        correctly, which is dominated by the largest class:
        """),
        code(r"""
        all_background = np.zeros_like(truths)
        lazy = metrics.ConfusionMatrix(num_classes=4).update(all_background, truths).compute()
        good = cm.compute()
        print(f"predict 'background' everywhere: aAcc {lazy['aAcc']:.3f}, mIoU {lazy['mIoU']:.3f}")
        print(f"the imperfect predictor:         aAcc {good['aAcc']:.3f}, mIoU {good['mIoU']:.3f}")
        """),
        md(r"""
        ## 5. Averaging over a dataset: per image or accumulated?

        There are two ways to score a whole validation set:

        * **accumulated** (dataset-level): add every image's pixels into **one** confusion
          matrix, then compute IoU per class and average over classes. This is how Pascal VOC,
          Cityscapes and MMSegmentation report mIoU, and what `ConfusionMatrix` does when you
          `update` it batch by batch;
        * **per image**: compute an mIoU for every image and average those.

        They can differ a lot. Take two images with one circle each: a large circle segmented
        almost perfectly, and a tiny circle missed completely.
        """),
        code(r"""
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
        """),
        md(r"""
        Accumulated IoU weighs every *pixel* equally: the tiny miss hardly matters. The
        per-image mean weighs every *image* equally: the miss halves the score. Neither is
        wrong, they answer different questions; the accumulated one is the standard, and more
        stable, because per-image scores jump between 0 and 1 on images where a class covers
        a handful of pixels. Per-image averaging also needs a rule for images where a class
        is absent from both truth and prediction (0/0): `ConfusionMatrix` gives NaN, and
        means skip NaNs.

        ## 6. Ignored pixels

        Annotations are often uncertain at object borders, or whole regions are unlabelled.
        Datasets mark such pixels with a reserved value, **255** in Pascal VOC, and both the
        loss (`F.cross_entropy(..., ignore_index=255)`) and the metrics skip them: whatever
        the network predicts there is neither right nor wrong. `viz.colorize` paints them
        white. We mark a 2-pixel band around every object boundary as ignored, as VOC does,
        and score the blurry predictor from above with and without the band:
        """),
        code(r"""
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
        """),
        md(r"""
        The blurry predictor's errors sit exactly on the boundaries, so ignoring them raises
        its score: a reminder to compare only numbers computed with the same rules.

        ## 7. Dice as a loss

        IoU and Dice count pixels, so they have no useful gradient. Replacing the counts with
        **probabilities** gives a differentiable "soft Dice",
        $1 - \frac{2\sum p\,t + \epsilon}{\sum p + \sum t + \epsilon}$ averaged over classes
        (`F.dice_loss`), often added to the cross-entropy when small structures matter (it
        scores every class by its overlap, whatever its size). Its gradient reaches every
        logit; as the logits of a fixed labelling grow more confident, the soft loss
        approaches one minus the mean hard Dice of that labelling (here the imperfect
        predictor's labels on four images):
        """),
        code(r"""
        target = ms.tensor(truths[:4])
        onehot = (preds[:4, None] == np.arange(4)[None, :, None, None]).astype(np.float32)
        hard = metrics.ConfusionMatrix(num_classes=4).update(preds[:4], truths[:4]).compute()["mDice"]
        for confidence in (1.0, 3.0, 10.0):
            logits = ms.tensor(confidence * (2 * onehot - 1), requires_grad=True)
            loss = F.dice_loss(logits, target)
            loss.backward()
            print(f"logits ±{confidence:>4}: soft Dice loss {loss.item():.4f}   (1 - hard mDice = {1 - hard:.4f}); "
                  f"gradient norm {np.linalg.norm(logits.grad.numpy()):.2e}")
        """),
        md(r"""
        ## 8. Quiz Q2 (and Q3)

        **Q2 (syllabus):** two binary masks are generated with
        `a = np.random.randint(2, size=(10, 10))` and `b = np.random.randint(2, size=(10, 10))`.
        Write the code that computes their IoU. Use what this lecture showed: the intersection
        is where *both* are 1, the union where *at least one* is. Fill in `iou` in
        `exercises/q2_iou.py` (0/1 integer or boolean masks, any shape) and run the check.
        (An answer must agree with `metrics.iou`, which you may use below to experiment, but
        not in the exercise.)
        """),
        code(r"""
        a = np.random.default_rng(1).integers(0, 2, size=(10, 10))
        b = np.random.default_rng(2).integers(0, 2, size=(10, 10))
        print("library IoU of a and b:", round(metrics.iou(a, b), 4))

        from minisegnet.grading import check
        check("q2")
        """),
        md(r"""
        **Q3:** the same for the Dice coefficient, in `exercises/q3_dice.py`:
        """),
        code(r"""
        check("q3")
        """),
        md(r"""
        ## Summary

        * IoU = |A∩B| / |A∪B| = TP / (TP+FP+FN); Dice = 2|A∩B| / (|A|+|B|) = 2TP / (2TP+FP+FN),
          the F1 score. For one pair of masks Dice = 2 IoU / (1 + IoU).
        * A `K × K` confusion matrix gives every class's TP (diagonal), FP (column) and FN
          (row); mIoU averages the per-class IoUs.
        * Benchmarks accumulate one matrix over the whole dataset; averaging per image gives a
          different, noisier number.
        * Pixels labelled 255 are ignored by the loss and the metrics; pixel accuracy is
          dominated by the background and says little on its own.
        """),
    ]


# ====================================================================================
@lecture("07_beyond_2017.ipynb")
def lecture_07():
    return [
        md(r"""
        # Lecture 7 — Beyond 2017: real-time networks and transformers

        FCN, PSPNet and DeepLab (2015-2017) settled the core ideas: a fully convolutional
        encoder, a decoder back to full resolution, and context from pooling or dilation.
        Later work went in two directions, and the syllabus recommends five papers:

        | paper | year | what changes | why |
        |---|---|---|---|
        | ICNet | 2018 | a heavy network on a **low-resolution** copy, light branches on higher resolutions, fused in cascade | cost grows with pixels; context does not need them all |
        | BiSeNet | 2018 | two paths: a shallow, wide **detail** path at 1/8 and a deep, fast-downsampling **context** path, fused | resolution and receptive field come from different paths instead of one expensive one |
        | Fast-SCNN | 2019 | a shared "learning to downsample" stem, a light global feature extractor of **depthwise-separable** blocks, fusion | fewer multiply-adds per layer, computed once for both paths |
        | SETR | 2021 | the encoder is a pure **transformer** over 16 × 16 patches | self-attention relates every patch to every other one from the first layer |
        | SegFormer | 2021 | a **hierarchical** transformer with reduced-cost attention and a tiny all-MLP decoder | multi-scale features like a CNN, global context, affordable at high resolution |

        We do not train these networks here. Instead, for each paper we build the key
        mechanism from the library's modules and measure what it buys: multiply-adds with
        `models.profile` / `models.summary`, shapes, and receptive fields with autograd.
        """),
        code(SETUP),
        md(r"""
        ## 1. Cost grows with pixels: ICNet's image cascade

        Every convolution's cost is proportional to the number of output pixels, so halving
        the input side divides the whole network's cost by four. PSPNet on our tiny backbone:
        """),
        code(r"""
        from minisegnet import models

        def macs(module, input_size):
            return sum(r["macs"] for r in models.profile(module, input_size=input_size))

        psp = models.create("pspnet", num_classes=4)
        for side in (128, 64, 32):
            print(f"PSPNet on a {side:>3}x{side:<3} image: {macs(psp, (1, 3, side, side)) / 1e6:8.1f} M multiply-adds")
        """),
        md(r"""
        ICNet (Zhao et al.) runs the heavy PSPNet-style network only on the image downsampled
        ×4, where context is cheap, and adds two *light* branches on the ×2-downsampled and
        full-resolution images that contribute edges and detail. A *cascade feature fusion*
        unit upsamples the coarser branch's features, projects both to a common width and adds
        them; auxiliary losses at each scale ("cascade label guidance") train every branch.
        A toy version, built from the library's pieces:
        """),
        code(r"""
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
              f"{macs(psp, (1, 3, 128, 128)) / 1e6:.1f} M")
        """),
        md(r"""
        ## 2. Depthwise-separable convolution: Fast-SCNN's building block

        A 3 × 3 convolution from `C` to `O` channels costs $C \cdot O \cdot 9$ multiply-adds per
        pixel: every output channel looks at every input channel through its own 3 × 3 filter.
        A **depthwise-separable** convolution factors this into

        1. a *depthwise* 3 × 3 convolution (`groups=C`): one filter per channel, $C \cdot 9$;
        2. a *pointwise* 1 × 1 convolution mixing the channels: $C \cdot O$.

        Fast-SCNN (Poudel et al.) builds almost its entire network from these (and from
        MobileNetV2's inverted bottlenecks, which are made of them), as do DeepLabV3+'s ASPP and
        decoder. The grouped convolution really is "each channel on its own":
        """),
        code(r"""
        x = ms.randn(2, 6, 9, 9)
        w = ms.randn(6, 1, 3, 3)                                     # one 3x3 filter per channel
        grouped = F.conv2d(x, w, padding=1, groups=6).numpy()
        one_by_one = np.concatenate([F.conv2d(x[:, c:c + 1], w[c:c + 1], padding=1).numpy() for c in range(6)], axis=1)
        print("groups=C == each channel convolved alone:", np.allclose(grouped, one_by_one, atol=1e-5))

        print(f"\n{'C -> O':>12}{'3x3 conv':>14}{'separable':>14}{'ratio':>8}")
        for c in (32, 64, 128, 256):
            normal = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False))
            separable = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False))
            a, b = macs(normal, (1, c, 32, 32)), macs(separable, (1, c, 32, 32))
            print(f"{f'{c} -> {c}':>12}{a:>14,}{b:>14,}{a / b:>8.1f}")
        print()
        print(models.summary(nn.Sequential(models.DepthwiseSeparableConvModule(64, 64, 3, padding=1)), (1, 64, 32, 32)))
        """),
        md(r"""
        The saving approaches the factor 9 as channels grow ($\frac{9 C O}{9C + CO} \to 9$).
        Fast-SCNN's other idea is to compute the first, high-resolution layers **once**
        ("learning to downsample") and share them between its detail and context paths,
        which is where two-path networks otherwise spend their time.

        ## 3. Two paths: BiSeNet

        BiSeNet (Yu et al.) gives up on asking one path for both resolution and receptive field:

        * a **spatial path** of three stride-2 ConvModules: shallow (so cheap) but wide, it
          keeps 1/8 resolution and the fine detail;
        * a **context path**: a backbone that downsamples fast to 1/32 (so cheap per layer)
          with a global average pooling on top, and *attention refinement* modules that
          reweigh its channels by a pooled summary;
        * a **feature fusion** module: concatenate the two, a ConvModule, and a channel
          reweighting (a sigmoid of a pooled 1 × 1 projection).

        A small version built from the library's modules, checked for shapes, cost per path,
        and that the gradient reaches both paths; then a short training run on Shapes.
        """),
        code(r"""
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
              f"{macs(models.create('deeplabv3', 4), (1, 3, 64, 64)) / 1e6:.1f} M on a 64x64 image")
        """),
        code(r"""
        from minisegnet import data, optim, viz
        from minisegnet.train import evaluate

        SHAPES = dict(image_size=32, max_shapes=2, size_range=(0.25, 0.35))
        train_set = data.Shapes(length=150 * 16, split="train", seed=0, **SHAPES)
        val_set = data.Shapes(length=64, split="val", seed=0, **SHAPES)
        ms.manual_seed(0)
        bisenet = ToyBiSeNet()
        optimizer = optim.Adam(bisenet.parameters(), lr=6e-3)
        schedule = optim.PolyLR(optimizer, total_iters=150)
        bisenet.train()
        start = time.perf_counter()
        for images, masks in data.DataLoader(train_set, batch_size=16, shuffle=True, seed=0, drop_last=True):
            loss = bisenet.loss(images, masks)["loss"]
            optimizer.zero_grad(); loss.backward(); optimizer.step(); schedule.step()
        scores = evaluate(bisenet, data.DataLoader(val_set, batch_size=32), num_classes=4).compute()
        print(f"toy BiSeNet, 150 steps ({time.perf_counter() - start:.0f} s): validation mIoU {scores['mIoU']:.3f}")
        bisenet.eval()
        images, masks = next(iter(data.DataLoader(val_set, batch_size=4)))
        with ms.no_grad():
            predictions = bisenet(images)
        viz.plot_predictions(images, masks, predictions, class_names=val_set.classes, palette=val_set.palette,
                             max_images=4, title="toy BiSeNet")
        """),
        md(r"""
        After 150 steps the toy network finds the objects and their extent, and still mixes up
        their shapes, much like the FCN of lecture 3 at this budget. The point is the
        structure: two paths of very different depth and resolution, trained together through
        one loss, for a third of DeepLabV3's multiply-adds.

        ## 4. Self-attention: global context in one layer (SETR)

        A convolution mixes a pixel with its neighbours; its receptive field grows only with
        depth (lecture 4). **Self-attention** mixes every position with every other one, with
        weights that depend on the content. For a feature map flattened into `L = H·W` tokens
        `X` of width `C`:

        $$Q = X W_q,\quad K = X W_k,\quad V = X W_v,\qquad
          \mathrm{Attention}(X) = \operatorname{softmax}\!\Bigl(\frac{Q K^{\mathsf T}}{\sqrt{d}}\Bigr)\, V .$$

        Row `i` of the `L × L` softmax says how much token `i` draws from each token `j`. SETR
        (Zheng et al.) cuts the image into 16 × 16 patches, embeds each patch as a token, runs
        a plain transformer encoder (layers of attention and MLPs) over the patch sequence, and
        reshapes the tokens back into a 1/16-resolution map for a convolutional decoder. Here
        is a self-attention layer written with the library's `matmul` and `softmax`: autograd
        differentiates it like any other op, and `gradcheck` agrees.
        """),
        code(r"""
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
        """),
        md(r"""
        **How far does one layer see?** Back-propagate from one output pixel to the input: a
        3 × 3 convolution reaches a 3 × 3 window, one self-attention layer reaches every pixel.
        And the weights are *content-dependent*: below, the query and key projections of a
        layer are set by hand to compare colours, so a pixel on one object attends to pixels of
        similar colour anywhere in the image.
        """),
        code(r"""
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
        axes[3].imshow(weights.numpy()[0, r * 32 + c].reshape(32, 32), cmap="magma"); axes[3].set_title("attention weights of +")
        for ax in axes:
            ax.set_xticks([]); ax.set_yticks([])
        plt.show()
        """),
        md(r"""
        The price is the `L × L` matrix: its size grows with the **square** of the number of
        pixels. That is why SETR attends over 16 × 16 patches rather than pixels, and why
        attention at high resolution needs a cheaper form:
        """),
        code(r"""
        for side in (16, 32, 64, 128):
            L = side * side
            print(f"{side:>3}x{side:<3} map: L = {L:>6} tokens, attention matrix {L * L:>12,} entries "
                  f"({L * L * 4 / 2 ** 20:8.1f} MiB in float32)")
        """),
        md(r"""
        ## 5. SegFormer: efficient attention, a feature pyramid, an all-MLP decoder

        SegFormer (Xie et al.) keeps the transformer but makes it practical for segmentation:

        * a **hierarchical** encoder (Mix Transformer) with four stages at strides 4, 8, 16 and
          32, like a CNN backbone, built by overlapping patch embeddings (strided convolutions);
        * **efficient self-attention**: keys and values come from the map *downsampled* by a
          ratio `R` (a strided convolution in the paper), so the matrix is `L × L/R²`;
        * **Mix-FFN**: a 3 × 3 depthwise convolution inside each MLP block leaks position
          information, so no positional encoding is needed and any image size works;
        * an **all-MLP decoder**: each stage's features go through a 1 × 1 projection to a
          common width, are upsampled to stride 4, concatenated, fused by another 1 × 1
          projection and classified.

        The efficient attention, with keys and values pooled by `R`:
        """),
        code(r"""
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
        """),
        md(r"""
        Still global, sixteen times cheaper. Finally the all-MLP decoder, on the four feature
        maps of the library's ResNet (in SegFormer they come from the transformer stages):
        """),
        code(r"""
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
        """),
        md(r"""
        ## Summary

        * **Speed**: cost scales with pixels, so ICNet computes context on a small image and
          detail on cheap branches; BiSeNet separates a shallow detail path from a fast
          context path; Fast-SCNN shares the first layers and builds the rest from
          depthwise-separable convolutions, about 8-9 times cheaper than plain ones.
        * **Transformers**: self-attention gives every position a global, content-dependent
          view in one layer, at a cost quadratic in the number of tokens; SETR attends over
          patches, SegFormer reduces keys and values, keeps a multi-scale pyramid and decodes
          with 1 × 1 projections only.

        ## References

        * H. Zhao, X. Qi, X. Shen, J. Shi, J. Jia. *ICNet for Real-Time Semantic Segmentation
          on High-Resolution Images.* ECCV 2018. arXiv:1704.08545.
        * R. P. K. Poudel, S. Liwicki, R. Cipolla. *Fast-SCNN: Fast Semantic Segmentation
          Network.* BMVC 2019. arXiv:1902.04502.
        * C. Yu, J. Wang, C. Peng, C. Gao, G. Yu, N. Sang. *BiSeNet: Bilateral Segmentation
          Network for Real-time Semantic Segmentation.* ECCV 2018. arXiv:1808.00897.
        * S. Zheng et al. *Rethinking Semantic Segmentation from a Sequence-to-Sequence
          Perspective with Transformers* (SETR). CVPR 2021. arXiv:2012.15840.
        * E. Xie, W. Wang, Z. Yu, A. Anandkumar, J. M. Alvarez, P. Luo. *SegFormer: Simple and
          Efficient Design for Semantic Segmentation with Transformers.* NeurIPS 2021.
          arXiv:2105.15203.

        The earlier lectures follow: J. Long, E. Shelhamer, T. Darrell, *Fully Convolutional
        Networks for Semantic Segmentation*, CVPR 2015, arXiv:1411.4038; H. Zhao et al.,
        *Pyramid Scene Parsing Network*, CVPR 2017, arXiv:1612.01105; L.-C. Chen et al.,
        *Rethinking Atrous Convolution for Semantic Image Segmentation* (DeepLabV3),
        arXiv:1706.05587, and *Encoder-Decoder with Atrous Separable Convolution for Semantic
        Image Segmentation* (DeepLabV3+), ECCV 2018, arXiv:1802.02611.
        """),
    ]


# ====================================================================================
def main(argv=None):
    parser = argparse.ArgumentParser(description="Write lectures/*.ipynb from lectures/build_notebooks.py.")
    parser.add_argument("prefixes", nargs="*", help="only lectures whose file name starts with one of these")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook is stale")
    args = parser.parse_args(argv)
    names = [n for n in LECTURES if not args.prefixes or any(n.startswith(p) for p in args.prefixes)]
    if not names:
        parser.error(f"no lecture matches {args.prefixes}; lectures: {', '.join(LECTURES)}")
    stale = []
    for name in names:
        path = HERE / name
        text = render(name)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if args.check:
            if current != text:
                stale.append(name)
        elif current != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print("stale notebooks (run python lectures/build_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
