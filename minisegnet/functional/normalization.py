"""Placeholder: batch_norm, dropout (being written)."""


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    raise NotImplementedError("batch_norm")


def dropout(input, p=0.5, training=True):
    raise NotImplementedError("dropout")


def dropout2d(input, p=0.5, training=True):
    raise NotImplementedError("dropout2d")
