"""Load PyTorch weights (e.g. torchvision's ImageNet ResNets) into minisegnet models.

Because minisegnet's parameter names follow PyTorch's (``layer1.0.conv1.weight``,
``bn1.running_var``, ...), converting a state dict is just: read it through PyTorch,
turn every tensor into a NumPy array, and load by name. PyTorch is needed only to read
``.pth`` files and is imported inside :func:`load_torch_weights`, never by the package.
"""
import os
import warnings
from collections import namedtuple

import numpy as np

from ..tensor import Tensor

LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys", "dropped_keys"])
LoadResult.__doc__ = """What :func:`load_torch_weights` did: keys the model has but the file lacked
(``missing_keys``), keys the file has but the model lacks (``unexpected_keys``), and
classifier keys (``fc.*``, ``classifier.*``) left out on purpose (``dropped_keys``)."""

# classification layers a backbone does not have (ImageNet heads of torchvision models)
_CLASSIFIER_PREFIXES = ("fc.", "classifier.")


def _read(path):
    try:
        import torch
    except ImportError:
        raise ImportError(f"load_torch_weights: reading {os.fspath(path)!r} needs PyTorch "
                          f"(pip install torch; the CPU build is enough). Alternatively convert the "
                          f"weights once elsewhere and pass a dict of NumPy arrays.") from None
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_torch_weights: {os.fspath(path)!r} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)


def _to_numpy(key, value):
    if isinstance(value, Tensor):
        return value.numpy()
    if hasattr(value, "detach"):                # a torch.Tensor
        return value.detach().cpu().numpy()
    if isinstance(value, (np.ndarray, np.generic, int, float)):
        return np.asarray(value)
    raise TypeError(f"load_torch_weights: value of {key!r} is a {type(value).__name__}, "
                    f"not a tensor or array")


def _unwrap(obj):
    """The flat state dict inside a saved object (a Module, or {'state_dict': ...})."""
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise TypeError(f"load_torch_weights: expected a state dict, got {type(obj).__name__}")
    for wrapper in ("state_dict", "model"):
        if isinstance(obj.get(wrapper), dict):
            return obj[wrapper]
    return obj


def load_torch_weights(model, path_or_state_dict, strict=False):
    """Copy weights from a PyTorch state dict (a ``.pth`` path or a dict) into ``model``.

    * Tensors become NumPy arrays (then the model's dtype and device); a ``module.``
      prefix (from ``DataParallel``) is removed.
    * Classifier keys (``fc.*``, ``classifier.*``) are dropped when ``model`` has no such
      layer – ImageNet heads do not belong in a segmentation backbone.
    * A segmentor given backbone-only weights (keys without ``backbone.``) loads them
      into ``model.backbone``; a backbone given a segmentor's weights takes the
      ``backbone.*`` part.
    * Shape mismatches are always an error. With ``strict=True`` missing or unexpected
      keys are an error too; otherwise they are returned (and missing ones warned about).

    Returns a :data:`LoadResult` ``(missing_keys, unexpected_keys, dropped_keys)``.
    """
    if not hasattr(model, "load_state_dict"):
        raise TypeError(f"load_torch_weights: model must be a minisegnet Module, got {type(model).__name__}")
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        source = _read(path_or_state_dict)
    else:
        source = path_or_state_dict
    state = {}
    for key, value in _unwrap(source).items():
        key = key[len("module."):] if key.startswith("module.") else key
        state[key] = value

    target = model
    own = set(model.state_dict())
    backbone = getattr(model, "backbone", None)
    if backbone is not None and not any(k.startswith("backbone.") for k in state):
        target, own = backbone, set(backbone.state_dict())
    elif backbone is None and any(k.startswith("backbone.") for k in state) and \
            not any(k.startswith("backbone.") for k in own):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}

    dropped = [k for k in state if k.startswith(_CLASSIFIER_PREFIXES)
               and not any(o.startswith(k.split(".")[0] + ".") for o in own)]
    arrays = {k: _to_numpy(k, v) for k, v in state.items() if k not in dropped}
    missing = [k for k in own if k not in arrays]
    unexpected = [k for k in arrays if k not in own]
    if strict and (missing or unexpected):
        raise ValueError(f"load_torch_weights (strict): {len(missing)} missing keys "
                         f"{missing[:8]}{' ...' if len(missing) > 8 else ''} and {len(unexpected)} "
                         f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    target.load_state_dict({k: v for k, v in arrays.items() if k in own}, strict=False)
    if missing:
        warnings.warn(f"load_torch_weights: {len(missing)} keys of {type(target).__name__} were not in "
                      f"the weights and keep their initial values: {missing[:8]}"
                      f"{' ...' if len(missing) > 8 else ''}", stacklevel=2)
    return LoadResult(sorted(missing), sorted(unexpected), sorted(dropped))
