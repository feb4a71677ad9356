"""Code the lecture notebooks share, written once: the training loop, multiply-add counts,
the measured tables of ``benchmarks/bench_zoo.py``, seed spreads and the sliders.

The notebooks import it as ``import _course as course`` (their first cell puts ``lectures/``
on ``sys.path``). Everything here is small on purpose: a student reading a lecture should be
able to open this file and see the whole loop.
"""
import json
import os
import pathlib
import time

import numpy as np

import minisegnet as ms
from minisegnet import data, optim
from minisegnet.models.summary import profile

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# ----------------------------------------------------------------------------- training
def train(model, dataset, steps, batch_size=16, lr=6e-3, loss=None, seed=0):
    """Train ``model`` for ``steps`` Adam steps on ``dataset`` with the poly schedule.

    One step is the loop every framework runs: forward pass and loss, ``backward()`` for
    the gradients of all parameters, ``optimizer.step()``, then the learning rate decays as
    ``lr0 * (1 - t / steps) ** 0.9``. ``loss(model, images, masks)`` defaults to the model's
    own ``model.loss(images, masks)["loss"]`` (pixel-wise cross-entropy, plus the auxiliary
    head where the model has one). ``dataset`` is anything the DataLoader takes (a dataset or
    a list of ``(image, mask)`` pairs); it is shuffled with ``seed`` and cycled if too short.

    Returns ``(losses, seconds)``: the loss of every step and the wall time of the loop.
    """
    optimizer = optim.Adam(model.parameters(), lr=lr)
    schedule = optim.PolyLR(optimizer, total_iters=steps, power=0.9)
    loss = loss or (lambda m, images, masks: m.loss(images, masks)["loss"])
    losses, start, epoch = [], time.perf_counter(), 0
    model.train()
    while len(losses) < steps:
        loader = data.DataLoader(dataset, batch_size=batch_size, shuffle=True, seed=seed + epoch, drop_last=True)
        for images, masks in loader:
            value = loss(model, images, masks)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            schedule.step()
            losses.append(value.item())
            if len(losses) == steps:
                break
        epoch += 1
    model.eval()
    return losses, time.perf_counter() - start


def macs(module, input_size):
    """Multiply-adds of one forward pass of ``module`` on zeros of ``input_size`` (N, C, H, W),
    summed over the leaf layers as ``models.summary`` counts them."""
    return sum(r["macs"] for r in profile(module, input_size=tuple(input_size)))


def n_params(module):
    """Number of parameter values of ``module``."""
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- spreads and tables
def spread(values):
    """``mean ± std (min-max, n=...)`` of a list of scores, the way every comparison prints it."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return f"{values[0]:.3f} (one seed)"
    return (f"{values.mean():.3f} ± {values.std(ddof=1):.3f} "
            f"({values.min():.3f}-{values.max():.3f}, n={values.size})")


def bench_zoo(dataset):
    """The runs ``benchmarks/bench_zoo.py`` recorded for ``dataset``, or None when there is no file.

    Returns the file's record (``command``, ``commit``, ``settings``, ``runs``) with one more
    key, ``by_model``: ``{model: [run, ...]}`` in seed order.
    """
    path = RESULTS / f"bench_zoo_{dataset}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    by_model = {}
    for run in sorted(record["runs"], key=lambda r: r["seed"]):
        by_model.setdefault(run["model"], []).append(run)
    record["by_model"] = by_model
    return record


def print_bench_zoo(*datasets):
    """Print the measured mIoU of every model on ``datasets`` (mean ± std over seeds) as a
    markdown table, each file's command and commit above it. Returns ``{(dataset, model): [mIoU, ...]}``."""
    table = {}
    for dataset in datasets:
        record = bench_zoo(dataset)
        if record is None:
            print(f"(no benchmarks/results/bench_zoo_{dataset}.json yet: run benchmarks/bench_zoo.py)")
            continue
        for command in record.get("commands", [record["command"]]):
            commits = sorted({str(r.get("commit", record["commit"]))[:12] for r in record["runs"]
                              if r.get("command", record["command"]) == command})
            print(f"{dataset}: `{command}` at commit {', '.join(commits)}")
        for model, runs in record["by_model"].items():
            table[dataset, model] = [r["mIoU"] for r in runs]
    if table:
        print()
        print("| dataset | model | steps | seeds | val mIoU (mean ± std, min-max) |")
        print("|---|---|---:|---|---|")
        for (dataset, model), values in table.items():
            runs = bench_zoo(dataset)["by_model"][model]
            seeds = ",".join(str(r["seed"]) for r in runs)
            print(f"| {dataset} | {model} | {runs[0]['steps']} | {seeds} | {spread(values)} |")
    return table


def zoo_sizes():
    """The sizes ``benchmarks/zoo_sizes.py`` computed (``benchmarks/results/zoo_sizes.json``),
    or None when there is no file: ``{model: {"paper": {...}, "num_classes": K,
    "at_512": {"params", "aux_params", "macs", "attention_macs"},
    "small_setting": {"kwargs": {...}, "num_classes": 5, "at_64": {...}}}}``."""
    path = RESULTS / "zoo_sizes.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def macs_by_part(model, input_size, part):
    """Multiply-adds of one forward pass, summed per part: ``part(row)`` names the part of each
    row of ``models.profile`` (a dict with ``name`` and ``type``). Returns ``{part: macs}``
    in the order the parts first run."""
    out = {}
    for row in profile(model, input_size=tuple(input_size)):
        key = part(row)
        out[key] = out.get(key, 0) + row["macs"]
    return out


# ----------------------------------------------------------------------------- diagrams
def diagram(ax, boxes, arrows, title=None, resolution_axis=True):
    """Draw a block diagram on ``ax``.

    ``boxes`` maps a key to ``(x, y, text)`` or ``(x, y, text, colour)``: a rounded box
    centred at ``(x, y)``; ``arrows`` is a list of ``(from_key, to_key)`` or
    ``(from_key, to_key, label)``, or with a fourth entry ``True`` for a dashed arrow
    (used for training-only paths). With ``resolution_axis`` the lectures put
    ``y = -log2(stride)``, so a box's height on the page says the resolution of its
    feature map, and the y axis is labelled 1/1, 1/2, 1/4, ...; without it ``y`` is free.
    """
    drawn = {}
    for key, spec in boxes.items():
        x, y, text = spec[:3]
        colour = spec[3] if len(spec) > 3 else "#dbe9f6"
        drawn[key] = ax.text(x, y, text, ha="center", va="center", fontsize=8,
                             bbox=dict(boxstyle="round,pad=0.35", fc=colour, ec="0.3"))
    for spec in arrows:
        a, b = spec[:2]
        label = spec[2] if len(spec) > 2 else None
        dashed = len(spec) > 3 and spec[3]
        ax.annotate("", xy=boxes[b][:2], xytext=boxes[a][:2],
                    arrowprops=dict(arrowstyle="-|>", color="0.25", lw=1.1, ls="--" if dashed else "-",
                                    patchA=drawn[a].get_bbox_patch(), patchB=drawn[b].get_bbox_patch(),
                                    shrinkA=2, shrinkB=2))
        if label:
            (xa, ya), (xb, yb) = boxes[a][:2], boxes[b][:2]
            ax.text((xa + xb) / 2, (ya + yb) / 2, label, fontsize=7, color="0.2", ha="center", va="bottom",
                    bbox=dict(fc="white", ec="none", pad=0.5))
    xs = [b[0] for b in boxes.values()]
    ys = [b[1] for b in boxes.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    if resolution_axis:
        levels = sorted({int(round(y)) for y in ys if abs(y - round(y)) < 1e-9})
        ax.set_yticks(levels, [f"1/{2 ** -y}" for y in levels])
        ax.set_ylabel("resolution (1 / stride)")
    else:
        ax.set_yticks([])
        ax.spines["left"].set_visible(False)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)


# ----------------------------------------------------------------------------- sliders
def static():
    """True where sliders should fall back to static figures: ipywidgets missing, or
    ``MINISEGNET_STATIC=1`` (set by the tests and by ``lectures/build.py`` so that the
    executed pages show the figures themselves)."""
    if os.environ.get("MINISEGNET_STATIC") == "1":
        return True
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return True
    return False


def slider(draw, static_values, **controls):
    """Call ``draw(**values)`` under ipywidgets sliders, or once per entry of ``static_values``.

    ``controls`` maps each argument of ``draw`` to an ipywidgets abbreviation: a list of
    choices or a ``(min, max, step)`` tuple. Without widgets, ``static_values`` (a list of
    dicts) gives the settings drawn instead, so the notebook still shows the idea when it is
    executed unattended.
    """
    if static():
        for values in static_values:
            draw(**values)
        return
    import ipywidgets
    defaults = static_values[0]
    widgets = {}
    for name, spec in controls.items():
        if isinstance(spec, list):
            widgets[name] = ipywidgets.SelectionSlider(options=spec, value=defaults[name], description=name)
        else:
            low, high, step = spec
            make = ipywidgets.FloatSlider if isinstance(step, float) else ipywidgets.IntSlider
            widgets[name] = make(min=low, max=high, step=step, value=defaults[name], description=name)
    ipywidgets.interact(draw, **widgets)


def seed_all(seed):
    """Seed the library (weights, dropout) for one run of a seed sweep."""
    ms.manual_seed(seed)
