"""The global random state: ``minisegnet.manual_seed(0)`` makes runs reproducible.

All randomness of the library (initialisation, dropout masks, data order,
augmentation) draws from :func:`generator`, a NumPy ``Generator``. Random numbers are
drawn on the host and then moved to the device, so a seed gives the same numbers on
the CPU and on the GPU.
"""
import numpy as np

_state = {"generator": np.random.default_rng(0), "seed": 0}


def manual_seed(seed):
    """Reset the global generator to ``seed`` (an int), like ``torch.manual_seed``."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed expects an int, got {type(seed).__name__}")
    _state["generator"] = np.random.default_rng(int(seed))
    _state["seed"] = int(seed)
    return _state["generator"]


def generator():
    """The global ``numpy.random.Generator`` every random op draws from."""
    return _state["generator"]


def get_rng_state():
    """The generator's state as a dict (for checkpoints); restore it with :func:`set_rng_state`."""
    return _state["generator"].bit_generator.state


def set_rng_state(state):
    _state["generator"].bit_generator.state = state
