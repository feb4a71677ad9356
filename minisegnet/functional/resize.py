"""Placeholder: interpolate (being written)."""


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    raise NotImplementedError("interpolate")
