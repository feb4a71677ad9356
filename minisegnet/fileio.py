"""Writing files so that a failure never leaves half a file, and OS errors as one line.

Everything minisegnet writes (checkpoints, ``history.csv``, masks, JSON reports) goes
through :func:`atomic_write`::

    with atomic_write("runs/x/history.csv", "w") as f:
        f.write(text)

The data goes to a hidden temporary file in the target's folder (``.history.csv.XXXX.tmp``);
only when it has been written completely and flushed to disk is it renamed over the target
(``os.replace`` is atomic within one file system). A full disk, a file-size limit, a folder
that disappears or a Ctrl-C half-way leaves the previous file as it was and removes the
temporary one. The file gets the usual permissions: ``0o666`` minus the umask, as ``open``
would give it (``tempfile.mkstemp`` alone gives ``0o600``).

:func:`describe_os_error` turns an ``OSError`` into the one line the command line prints:
``cannot write runs/x/last.npz: No space left on device``.

This module imports nothing from minisegnet, so every layer may use it.
"""
import contextlib
import errno
import os
import tempfile
import threading

__all__ = ["atomic_write", "describe_os_error", "file_mode", "current_umask"]

_umask_lock = threading.Lock()


def current_umask():
    """The process's umask (read by setting it and putting it straight back)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode():
    """The mode a new file gets from ``open()``: ``0o666`` without the umask's bits."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None, newline=None):
    """Open a temporary file next to ``path``; on success rename it to ``path``.

    ``mode`` is ``'wb'`` or ``'w'`` (text, with ``encoding``/``newline`` as for ``open``).
    Any exception inside the ``with`` block (or while flushing) removes the temporary file
    and propagates; ``path`` is then untouched. An ``OSError`` raised here names the path
    being written in its ``filename``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            e.strerror = f"{e.strerror or 'No such file or directory'} (the folder {folder} is missing)"
        e.filename = path
        raise
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            e.filename = path                 # name the file the user asked for, not the temporary
        raise


_REASONS = {
    errno.EFBIG: "File too large (the file-size limit, `ulimit -f`, was reached)",
    errno.ENOSPC: "No space left on device",
}
if hasattr(errno, "EDQUOT"):
    _REASONS[errno.EDQUOT] = "Disk quota exceeded"


def describe_os_error(error, action="write", path=None):
    """One line for an ``OSError``: ``cannot <action> <path>: <reason>``.

    ``path`` defaults to the error's own ``filename``; the reason is the system's text
    (``Permission denied``, ``No space left on device``, ...).
    """
    path = path if path is not None else getattr(error, "filename", None)
    reason = _REASONS.get(getattr(error, "errno", None)) or getattr(error, "strerror", None) or str(error)
    where = f" {os.fspath(path)}" if path is not None else ""
    return " ".join(f"cannot {action}{where}: {reason}".split())
