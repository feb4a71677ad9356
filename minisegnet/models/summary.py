"""``summary(model)``: a table of layers, output shapes, parameters and multiply-adds.

It runs one forward pass on a zero input and records every *leaf* module (one with no
children: Conv2d, BatchNorm2d, ReLU, ...) as it is called. Compute is counted in
multiply-accumulate operations (MACs; 1 MAC = 2 FLOPs):

* Conv2d:           ``N * H_out * W_out * C_out * (C_in / groups) * kh * kw``
* ConvTranspose2d:  ``N * H_in * W_in * C_in * (C_out / groups) * kh * kw``
* Linear:           ``(elements of the output) * in_features``
* a module with an ``extra_macs(inputs, output)`` method adds the work it does outside
  its child modules (self-attention's two matrix products, ``Q K^T`` and ``weights V``)

Everything else (BatchNorm, ReLU, pooling, and the resizes and concatenations heads do
as functions) is shown with ``-``: it is cheap next to convolutions. Two lessons
that the table makes visible: a dilated 3x3 conv costs exactly what an undilated one
does, but output stride 8 instead of 32 multiplies the cost of the last stages by 16.
"""
import math

from ..tensor import no_grad, zeros


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _macs(module, inputs, output):
    kind = type(module).__name__
    if hasattr(module, "extra_macs"):      # work done outside child modules (attention's matmuls)
        return module.extra_macs(inputs, output)
    if kind in ("Conv2d", "ConvTranspose2d"):
        kh, kw = _pair(module.kernel_size)
        w = module.weight.shape          # Conv2d (C_out, C_in/g, kh, kw); transposed (C_in, C_out/g, kh, kw)
        if kind == "Conv2d":
            n, _, h, wd = output.shape
            return n * h * wd * w[0] * w[1] * kh * kw
        n, _, h, wd = inputs[0].shape
        return n * h * wd * w[0] * w[1] * kh * kw
    if kind == "Linear":
        return math.prod(output.shape) * module.in_features
    return 0


def profile(model, input_size=(1, 3, 64, 64)):
    """Run ``model`` once on zeros of ``input_size`` and return one dict per leaf-module
    call: ``name``, ``type``, ``output_shape``, ``params`` (the module's own), ``macs``.

    The model runs in eval mode (restored afterwards) without recording a graph.
    """
    if len(input_size) != 4 or any(int(s) < 1 for s in input_size):
        raise ValueError(f"summary: input_size must be (N, C, H, W) with positive entries, got {input_size!r}")
    params = list(model.parameters())
    dtype = params[0].dtype if params else None
    device = params[0].device if params else "cpu"
    rows, patched = [], []
    modes = {id(m): m.training for m in model.modules()}

    def wrap(name, module):
        forward = module.forward

        def recorded(*args, **kwargs):
            out = forward(*args, **kwargs)
            first_call = not any(r["module_id"] == id(module) for r in rows)
            rows.append({"name": name or type(module).__name__, "type": type(module).__name__,
                         "output_shape": tuple(out.shape) if hasattr(out, "shape") else None,
                         "params": sum(p.numel() for p in module.parameters(recurse=False)) if first_call else 0,
                         "macs": _macs(module, args, out), "module_id": id(module)})
            return out
        return recorded

    try:
        for name, m in model.named_modules():
            if next(m.children(), None) is None or hasattr(m, "extra_macs"):
                object.__setattr__(m, "forward", wrap(name, m))
                patched.append(m)
        model.eval()
        with no_grad():
            model(zeros(*[int(s) for s in input_size], dtype=dtype, device=device))
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)
        for m in model.modules():
            object.__setattr__(m, "training", modes.get(id(m), m.training))
    for r in rows:
        del r["module_id"]
    return rows


def _human(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def summary(model, input_size=(1, 3, 64, 64)):
    """The layer table as a string (see the module docstring for what is counted).

    Columns: layer name, type, output shape, parameters, MACs; then totals and the share
    of MACs per top-level part (e.g. ``backbone`` vs ``decode_head``).
    """
    rows = profile(model, input_size)
    name_w = max([len("Layer")] + [len(r["name"]) for r in rows]) + 2
    type_w = max([len("Type")] + [len(r["type"]) for r in rows]) + 2
    shape_w = max([len("Output shape")] + [len(str(r["output_shape"])) for r in rows]) + 2
    header = f"{'Layer':<{name_w}}{'Type':<{type_w}}{'Output shape':<{shape_w}}{'Params':>12}{'MACs':>14}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['name']:<{name_w}}{r['type']:<{type_w}}{str(r['output_shape']):<{shape_w}}"
                     f"{r['params'] or '-':>12}{(format(r['macs'], ',') if r['macs'] else '-'):>14}")
    total_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_macs = sum(r["macs"] for r in rows)
    lines += ["-" * len(header),
              f"Input size: {tuple(input_size)}",
              f"Total params: {total_params:,} ({_human(total_params)}), trainable: {trainable:,}",
              f"Total MACs: {total_macs:,} ({_human(total_macs)}; FLOPs ~ 2 x MACs)"]
    parts = {}
    for r in rows:
        top = r["name"].split(".")[0]
        parts[top] = parts.get(top, 0) + r["macs"]
    if total_macs and len(parts) > 1:
        shares = ", ".join(f"{k} {100 * v / total_macs:.1f}%" for k, v in parts.items() if v)
        lines.append(f"MACs by part: {shares}")
    return "\n".join(lines)


def print_summary(model, input_size=(1, 3, 64, 64)):
    """Print :func:`summary`'s table."""
    print(summary(model, input_size))
