"""The stand-in's ``cupyx``: minisegnet uses nothing from it (``cupyx.scatter_add`` is
deprecated in CuPy 13 and 14; ``xp.add.at`` does the same), so every name is refused."""


def __getattr__(name):
    raise AttributeError(f"the CuPy stand-in provides no cupyx.{name}: minisegnet should not "
                         "need cupyx (use the cupy/numpy API shared by both backends)")
