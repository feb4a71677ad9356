"""Parameters and multiply-adds of the real-time and transformer models, next to the papers.

    python benchmarks/zoo_sizes.py                   # writes benchmarks/results/zoo_sizes.json
    python benchmarks/zoo_sizes.py --out sizes.json

For each of fast_scnn, bisenetv2 and segformer_b0 it builds the model (19 classes, as on
Cityscapes; 150 for SegFormer, as on ADE20K), counts its parameters (the inference network;
the auxiliary heads only train, so they are counted separately) and its MACs on one
512x512 image with :func:`minisegnet.models.profile` (convolutions, linear layers, and
attention's two matrix products). It also reports the small settings the built-in 64 px
datasets use. No timing: the numbers depend only on the architecture.
"""
import argparse
import json
import os
import sys

from minisegnet import models

#: the papers' own figures (parameters; SegFormer also its FLOPs, which are multiply-adds
#: as counted by mmcv). Fast-SCNN: Poudel et al. 2019, Table 1; BiSeNetV2: Yu et al. 2021;
#: SegFormer-B0: Xie et al. 2021, Table 1 (ADE20K, 512x512).
PAPERS = {
    "fast_scnn": {"params": 1.11e6, "classes": 19},
    "bisenetv2": {"params": 3.4e6, "classes": 19},
    "segformer_b0": {"params": 3.8e6, "macs_512": 8.4e9, "classes": 150},
}
SMALL = {"fast_scnn": {"width": 0.25}, "bisenetv2": {"width": 0.25}, "segformer_b0": {"width": 0.5}}


def count(model, size):
    params = sum(p.numel() for p in model.parameters())
    aux = sum(p.numel() for p in model.auxiliary_head.parameters()) if model.auxiliary_head is not None else 0
    rows = models.profile(model, (1, 3, size, size))
    return {"params": params - aux, "aux_params": aux, "macs": sum(r["macs"] for r in rows),
            "attention_macs": sum(r["macs"] for r in rows if r["type"] == "EfficientSelfAttention")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "zoo_sizes.json"))
    args = parser.parse_args(argv)
    result = {}
    for name, paper in PAPERS.items():
        aux = {} if name == "segformer_b0" else {"aux": True}
        full = count(models.create(name, paper["classes"], **aux), 512)
        small = count(models.create(name, 5, **aux, **SMALL[name]), 64)
        result[name] = {"paper": {k: v for k, v in paper.items() if k != "classes"}, "num_classes": paper["classes"],
                        "at_512": full, "small_setting": {"kwargs": SMALL[name], "num_classes": 5, "at_64": small}}
        print(f"{name:14s} params {full['params'] / 1e6:5.2f}M (paper {paper['params'] / 1e6:.2f}M)  "
              f"MACs@512 {full['macs'] / 1e9:6.2f}G  aux {full['aux_params'] / 1e6:.2f}M  | "
              f"{SMALL[name]}: {small['params'] / 1e3:.0f}K params, {small['macs'] / 1e6:.1f}M MACs@64")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.out)
    except OSError as e:
        print(f"zoo_sizes: cannot write {args.out}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
