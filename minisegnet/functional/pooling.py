"""Placeholder: pooling (being written)."""


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    raise NotImplementedError("max_pool2d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    raise NotImplementedError("avg_pool2d")


def adaptive_avg_pool2d(input, output_size):
    raise NotImplementedError("adaptive_avg_pool2d")


def adaptive_max_pool2d(input, output_size):
    raise NotImplementedError("adaptive_max_pool2d")
