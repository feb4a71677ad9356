"""Fetching a real dataset: mirrors, resumable downloads, checksums, safe extraction.

A dataset that can be downloaded lists its archives (:class:`Archive`: the official file
name, its MD5 checksum and the URLs that serve it). :func:`fetch_archive` gets one:

1. the URLs are tried in order, ``$MINISEGNET_DATASET_MIRROR/<file name>`` first when that
   environment variable is set (a base URL under which the archives sit by file name,
   e.g. a university's copy, or ``http://127.0.0.1:8000`` in the tests);
2. the bytes go to ``<file name>.part``; a download that stops half-way keeps it, and the
   next attempt asks the server only for the rest (an HTTP ``Range`` request); a tqdm bar
   shows the progress on stderr;
3. the MD5 checksum of the whole file is checked *before* anything is extracted: a corrupt
   or tampered download is reported as a checksum mismatch and deleted;
4. :func:`extract` unpacks the archive only after checking every member: a member whose
   path is absolute, climbs out with ``..``, or is a link pointing outside the target folder
   (or a device file) is refused and nothing is extracted. The members go to a hidden
   folder first and are moved into place only when all of them are out, so a full disk
   half-way leaves no half-unpacked dataset that a later run would take for a whole one.

When no URL can be reached the error is one line that says so (offline?) and lists what each
URL answered. Nothing here runs unless ``download=True`` / ``--download`` asks for it.
"""
import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass

__all__ = ["Archive", "DownloadError", "MIRROR_ENV", "candidate_urls", "md5sum", "fetch_archive", "extract",
           "download_and_extract"]

MIRROR_ENV = "MINISEGNET_DATASET_MIRROR"
CHUNK = 1 << 16
TIMEOUT_S = 30


class DownloadError(RuntimeError):
    """A dataset archive could not be fetched or unpacked (one line: what and why)."""


class _CutShort(Exception):
    """The server sent fewer bytes than it announced (the part file is kept for a resume)."""


@dataclass(frozen=True)
class Archive:
    """One file of a dataset: its official name, MD5 checksum and the URLs that serve it."""
    filename: str
    md5: str
    urls: tuple


def candidate_urls(archive):
    """The URLs to try, in order: the ``MINISEGNET_DATASET_MIRROR`` one first, then the archive's."""
    urls = list(archive.urls)
    base = os.environ.get(MIRROR_ENV, "").strip()
    if base:
        urls.insert(0, f"{base.rstrip('/')}/{archive.filename}")
    return urls


def md5sum(path):
    """The MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress(total, initial, desc, enabled):
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, dynamic_ncols=True, leave=False)


def _get(url, part, progress):
    """Download ``url`` into ``part``, continuing a partial file with an HTTP Range request."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "minisegnet"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:             # "range not satisfiable": the part file is already whole
            return
        raise
    with response:
        if have and response.status != 206:    # the server ignored the Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = _progress(total, have, os.path.basename(part)[:-len(".part")], progress)
        try:
            with open(part, "ab" if have else "wb") as f:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    if total is not None and os.path.getsize(part) < total:
        raise _CutShort(f"the connection closed after {os.path.getsize(part)} of {total} bytes "
                              f"(run again to resume)")


def _reason(error):
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(getattr(error.reason, "strerror", None) or error.reason)
    if isinstance(error, http.client.IncompleteRead):
        return "the connection closed before the end of the file (run again to resume)"
    return str(getattr(error, "strerror", None) or error) or type(error).__name__


def fetch_archive(archive, folder, progress=True):
    """``folder/<archive.filename>`` with a verified checksum, downloaded if needed; returns its path.

    Raises :class:`DownloadError` (one line) when every URL fails or the checksum is wrong.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, archive.filename)
    if os.path.isfile(path) and md5sum(path) == archive.md5:
        return path
    part = path + ".part"
    failures, reached = [], False
    for url in candidate_urls(archive):
        try:
            _get(url, part, progress)
        except (OSError, http.client.HTTPException, _CutShort) as e:   # refused, HTTP error, timeout, cut short
            if isinstance(e, (urllib.error.HTTPError, http.client.HTTPException, _CutShort)):
                reached = True
            failures.append(f"{url} ({_reason(e)})")
            continue
        reached = True
        got = md5sum(part)
        if got != archive.md5:
            os.remove(part)
            failures.append(f"{url} (checksum mismatch: MD5 {got}, expected {archive.md5}; the file was deleted)")
            continue
        os.replace(part, path)
        return path
    hint = "" if reached else "no server could be reached (offline?); "
    raise DownloadError(f"cannot download {archive.filename}: {hint}tried {'; '.join(failures)}. Set "
                        f"{MIRROR_ENV} to a mirror's base URL, or put the file into {folder} by hand")


def _inside(target, path):
    target = os.path.realpath(target)
    return os.path.commonpath([target, os.path.realpath(path)]) == target


def _check_member(member, target, archive_name):
    name = member.name
    where = f"{archive_name}: member {name!r}"
    if os.path.isabs(name) or name.startswith(("/", "\\")):
        raise DownloadError(f"{where} has an absolute path; nothing was extracted")
    if ".." in name.replace("\\", "/").split("/") or not _inside(target, os.path.join(target, name)):
        raise DownloadError(f"{where} would be written outside {target}; nothing was extracted")
    if member.issym() or member.islnk():
        base = os.path.dirname(os.path.join(target, name)) if member.issym() else target
        link = member.linkname
        if os.path.isabs(link) or not _inside(target, os.path.join(base, link)):
            raise DownloadError(f"{where} is a link to {link!r} outside {target}; nothing was extracted")
    elif not (member.isfile() or member.isdir()):
        raise DownloadError(f"{where} is a device or pipe; nothing was extracted")


def extract(path, target):
    """Unpack the tar archive ``path`` into ``target`` after checking every member (see the module text)."""
    name = os.path.basename(path)
    staging = os.path.join(target, f".extracting-{name}")
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, target, name)
            shutil.rmtree(staging, ignore_errors=True)
            os.makedirs(staging)
            for member in members:
                tar.extract(member, staging, set_attrs=False, **_filter())
        _move_into(staging, target)
    except (tarfile.TarError, EOFError) as e:
        raise DownloadError(f"cannot extract {path}: {e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _move_into(source, target):
    """Move every entry of folder ``source`` into ``target``, merging folders that exist in both."""
    for entry in os.listdir(source):
        src, dst = os.path.join(source, entry), os.path.join(target, entry)
        if os.path.isdir(src) and not os.path.islink(src) and os.path.isdir(dst):
            _move_into(src, dst)
        else:
            os.replace(src, dst)


def _filter():
    # Python 3.12+ (and the security backports) can check members themselves: ask for it too
    return {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def download_and_extract(archives, folder, progress=True, keep_archives=True):
    """Fetch every archive into ``folder`` (checksums verified) and unpack them there."""
    for archive in archives:
        path = fetch_archive(archive, folder, progress=progress)
        extract(path, folder)
        if not keep_archives:
            os.remove(path)
    return folder
