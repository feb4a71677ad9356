"""``minisegnet.nn``: Modules (layers with parameters) built on :mod:`minisegnet.functional`.

Names, arguments, defaults and ``state_dict`` keys follow ``torch.nn``.
"""
from . import init
from .module import Module, Parameter
from .layers import (CircularPad2d, ConstantPad2d, Dropout, Identity, Linear, ModuleDict, ModuleList,
                     ReflectionPad2d, ReLU, ReplicationPad2d, Sequential, ZeroPad2d)
from .conv import *  # noqa: F401,F403  Conv2d, ConvTranspose2d
from .pooling import *  # noqa: F401,F403  MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, Upsample
from .normalization import *  # noqa: F401,F403  BatchNorm2d, Dropout2d
from .loss import *  # noqa: F401,F403  CrossEntropyLoss, DiceLoss
from .transformer import *  # noqa: F401,F403  LayerNorm, GELU, MultiheadAttention, DropPath
