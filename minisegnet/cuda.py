"""``minisegnet.cuda``: is a GPU usable here? (mirrors ``torch.cuda.is_available``)."""
from .backend import cuda_is_available as is_available

__all__ = ["is_available"]
