"""Downloading real datasets, against a local HTTP server on 127.0.0.1 (nothing else is contacted).

The server (threaded, a few seconds' socket timeout, shut down by the fixture and by a timer
of its own) serves archives generated here in the official layouts (Oxford-IIIT Pet's
``images.tar.gz`` / ``annotations.tar.gz``, VOC's ``VOCtrainval_11-May-2012.tar``) and
answers HTTP Range requests; the tests patch the checksum table to the generated files'.
Cases: a good archive, a wrong checksum, a ``../`` member (and absolute paths, links out),
the server stopping mid-download followed by a resume, a mirror that fails before one that
works, and no server at all.
"""
import hashlib
import io
import os
import socket
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from minisegnet import cli, data
from minisegnet.data import download
from minisegnet.data.download import Archive, DownloadError
from minisegnet.data.voc import OxfordIIITPet, VOCSegmentation


# ----------------------------------------------------------------------------- archives
def _png_bytes(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpg_bytes(h, w, seed):
    rgb = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    return buffer.getvalue()


def _tar(members, gz):
    """A tar (gzip'd if ``gz``) of ``{name: bytes}``; a value ('symlink', target) makes a link."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


# a 6 x 8 trimap: the pet (1) on the left, background (2) on the right, the border (3) between
TRIMAP = np.full((6, 8), 2, np.uint8)
TRIMAP[:, :3] = 1
TRIMAP[:, 3] = 3
PET_NAMES = {"trainval": ["Abyssinian_1", "beagle_2"], "test": ["Bengal_3", "boxer_4"]}


def pet_archives():
    names = PET_NAMES["trainval"] + PET_NAMES["test"]
    images = {f"images/{n}.jpg": _jpg_bytes(6, 8, k) for k, n in enumerate(names)}
    annotations = {f"annotations/trimaps/{n}.png": _png_bytes(TRIMAP, "L") for n in names}
    for split, listed in PET_NAMES.items():
        annotations[f"annotations/{split}.txt"] = "".join(f"{n} 1 1 1\n" for n in listed).encode()
    return {"images.tar.gz": _tar(images, gz=True), "annotations.tar.gz": _tar(annotations, gz=True)}


def voc_archive():
    base = "VOCdevkit/VOC2012/"
    mask = np.zeros((6, 8), np.uint8)
    mask[1:4, 2:5], mask[0, :] = 15, 255                     # a person, the border row ignored
    palette_png = Image.fromarray(mask, "P")
    palette_png.putpalette([0, 0, 0] * 256)
    buffer = io.BytesIO()
    palette_png.save(buffer, format="PNG")
    members = {base + "ImageSets/Segmentation/train.txt": b"2007_000001\n",
               base + "ImageSets/Segmentation/val.txt": b"2007_000002\n"}
    for k, name in enumerate(("2007_000001", "2007_000002")):
        members[base + f"JPEGImages/{name}.jpg"] = _jpg_bytes(6, 8, k)
        members[base + f"SegmentationClass/{name}.png"] = buffer.getvalue()
    return {"VOCtrainval_11-May-2012.tar": _tar(members, gz=False)}


def md5(content):
    return hashlib.md5(content).hexdigest()


# ----------------------------------------------------------------------------- the server
class Server:
    """Serves ``files`` ({name: bytes}) with Range support; ``cut_after`` bytes ends a response early."""

    def __init__(self, files):
        self.files, self.cut_after, self.requests = dict(files), None, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5                                       # a stuck client cannot hold a thread

            def log_message(self, *args):
                pass

            def do_GET(self):
                name = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
                owner.requests.append((name, self.headers.get("Range")))
                if name not in owner.files:
                    self.send_error(404)
                    return
                body, start = owner.files[name], 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                chunk = body[start:]
                if owner.cut_after is not None:
                    chunk, owner.cut_after = chunk[:owner.cut_after], None     # once, then serve normally
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.timer = threading.Timer(120, self.stop)          # stops itself whatever happens
        self.timer.daemon = True

    def start(self):
        self.thread.start()
        self.timer.start()
        return self

    def stop(self):
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(files):
        servers.append(Server(files).start())
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"                         # nothing listens there any more


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch):
    """No test may reach a host other than 127.0.0.1, whatever a URL table says."""
    real = urllib.request.urlopen

    def urlopen(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            raise urllib.error.URLError(f"test: no network beyond 127.0.0.1 ({url})")
        return real(request, *args, **kwargs)
    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)


def patch_archives(monkeypatch, cls, files, base_url, md5s=None):
    archives = tuple(Archive(a.filename, (md5s or {}).get(a.filename, md5(files[a.filename])),
                             (f"{base_url}/{a.filename}",)) for a in cls.archives)
    monkeypatch.setattr(cls, "archives", archives)
    return archives


# ----------------------------------------------------------------------------- the cases
def test_official_table_matches_torchvision():
    assert [(a.filename, a.md5) for a in OxfordIIITPet.archives] == [
        ("images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
        ("annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f")]
    assert [(a.filename, a.md5) for a in VOCSegmentation.archives] == [
        ("VOCtrainval_11-May-2012.tar", "6cd6e144f989b92b3379bac3b3de84fd")]


def test_pets_download_in_torchvision_layout_and_trimap_labels(serve, monkeypatch, tmp_path):
    files = pet_archives()
    server = serve(files)
    patch_archives(monkeypatch, OxfordIIITPet, files, server.url)
    ds = OxfordIIITPet(tmp_path, split="train", download=True, progress=False)
    assert os.path.isdir(tmp_path / "oxford-iiit-pet" / "annotations" / "trimaps")
    assert len(ds) == 2 and ds.classes == ("background", "pet")
    image, mask = ds[0]
    assert image.shape == (3, 6, 8) and image.dtype == np.float32
    expected = np.where(TRIMAP == 1, 1, np.where(TRIMAP == 2, 0, 255))
    np.testing.assert_array_equal(mask, expected)
    with_border = OxfordIIITPet(tmp_path, split="val", border="class", download=True, progress=False)
    np.testing.assert_array_equal(with_border[1][1], np.where(TRIMAP == 1, 1, np.where(TRIMAP == 2, 0, 2)))
    assert with_border.classes == ("background", "pet", "border") and len(with_border.palette) == 3
    assert len(server.requests) == 2                          # already there: nothing fetched twice


def test_voc_download_through_the_mirror_variable(serve, monkeypatch, tmp_path):
    files = voc_archive()
    server = serve(files)
    patch_archives(monkeypatch, VOCSegmentation, files, closed_port_url())     # the official URL is down
    monkeypatch.setenv(download.MIRROR_ENV, server.url + "/")
    ds = VOCSegmentation(tmp_path, split="train", download=True, progress=False)
    image, mask = ds[0]
    assert image.shape == (3, 6, 8) and set(np.unique(mask)) == {0, 15, 255}
    # the devkit's colours (VOCdevkit labelcolormap): aeroplane dark red, person pink
    assert ds.palette[1].tolist() == [128, 0, 0] and ds.palette[15].tolist() == [192, 128, 128]
    assert ds.palette[20].tolist() == [0, 64, 128]
    assert os.path.isdir(tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages")


def test_mirrors_are_tried_in_order():
    archive = Archive("x.tar", "0" * 32, ("http://a/x.tar", "http://b/x.tar"))
    assert download.candidate_urls(archive) == ["http://a/x.tar", "http://b/x.tar"]
    os.environ[download.MIRROR_ENV] = "http://mirror/datasets/"
    try:
        assert download.candidate_urls(archive)[0] == "http://mirror/datasets/x.tar"
    finally:
        del os.environ[download.MIRROR_ENV]


def test_a_failing_mirror_falls_through_to_the_next(serve, tmp_path):
    files = {"a.tar": _tar({"a/file.txt": b"hello"}, gz=False)}
    server = serve(files)
    archive = Archive("a.tar", md5(files["a.tar"]), (closed_port_url() + "/a.tar", f"{server.url}/gone/b.tar",
                                                     f"{server.url}/a.tar"))
    path = download.fetch_archive(archive, tmp_path, progress=True)
    assert open(path, "rb").read() == files["a.tar"]
    assert [name for name, _ in server.requests] == ["b.tar", "a.tar"]       # the 404 came first


def test_wrong_checksum_is_reported_and_nothing_is_extracted(serve, monkeypatch, tmp_path):
    files = pet_archives()
    server = serve(files)
    patch_archives(monkeypatch, OxfordIIITPet, files, server.url, md5s={"images.tar.gz": "f" * 32})
    with pytest.raises(DownloadError, match=r"images.tar.gz.*checksum mismatch.*expected f{32}") as info:
        OxfordIIITPet(tmp_path, download=True, progress=False)
    assert "\n" not in str(info.value)
    base = tmp_path / "oxford-iiit-pet"
    assert not (base / "images").exists() and os.listdir(base) == []        # no archive, no part, no member


def test_a_member_escaping_the_folder_is_refused_before_anything_is_extracted(serve, monkeypatch, tmp_path):
    files = pet_archives()
    files["images.tar.gz"] = _tar({"images/Abyssinian_1.jpg": b"fine", "../evil.txt": b"escaped"}, gz=True)
    server = serve(files)
    patch_archives(monkeypatch, OxfordIIITPet, files, server.url)
    with pytest.raises(DownloadError, match="'../evil.txt' would be written outside"):
        OxfordIIITPet(tmp_path / "root", download=True, progress=False)
    assert not (tmp_path / "root" / "evil.txt").exists()
    assert not (tmp_path / "root" / "oxford-iiit-pet" / "images").exists()


@pytest.mark.parametrize("members, message", [
    ({"/etc/passwd_copy": b"x"}, "absolute path"),
    ({"data/link": ("symlink", "../../outside")}, "link to '../../outside' outside"),
    ({"data/link": ("symlink", "/etc")}, "link to '/etc' outside"),
])
def test_extract_refuses_absolute_paths_and_links_out(tmp_path, members, message):
    archive = tmp_path / "bad.tar"
    archive.write_bytes(_tar({"data/ok.txt": b"ok", **members}, gz=False))
    with pytest.raises(DownloadError, match=message):
        download.extract(str(archive), str(tmp_path / "target"))
    assert not (tmp_path / "target").exists()


def test_a_full_disk_while_extracting_leaves_no_half_dataset(tmp_path, monkeypatch):
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar({"images/a.jpg": b"1", "images/b.jpg": b"2"}, gz=False))
    real, calls = tarfile.TarFile.extract, []

    def extract(self, member, *args, **kwargs):
        calls.append(member)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, member, *args, **kwargs)
    monkeypatch.setattr(tarfile.TarFile, "extract", extract)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(OSError, match="No space left"):
        download.extract(str(archive), str(target))
    assert os.listdir(target) == []                           # no images/ with one file, no staging folder
    monkeypatch.undo()
    download.extract(str(archive), str(target))
    assert sorted(os.listdir(target / "images")) == ["a.jpg", "b.jpg"]


def test_a_download_cut_short_resumes_with_a_range_request(serve, tmp_path):
    body = os.urandom(300_000)
    files = {"big.tar": body}
    server = serve(files)
    archive = Archive("big.tar", md5(body), (f"{server.url}/big.tar",))
    server.cut_after = 100_000
    with pytest.raises(DownloadError, match="run again to resume"):
        download.fetch_archive(archive, tmp_path, progress=False)
    part = tmp_path / "big.tar.part"
    assert part.stat().st_size == 100_000
    path = download.fetch_archive(archive, tmp_path, progress=False)
    assert server.requests[-1] == ("big.tar", "bytes=100000-")
    assert open(path, "rb").read() == body and not part.exists()


def test_no_server_is_one_clear_line_from_the_cli(capsys, monkeypatch, tmp_path):
    files = pet_archives()
    patch_archives(monkeypatch, OxfordIIITPet, files, closed_port_url())
    code = cli.main(["train", "--dataset", "pets", "--download", "--data-root", str(tmp_path), "--no-progress",
                     "--out", str(tmp_path / "run")])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert "cannot download images.tar.gz" in lines[0] and "offline" in lines[0]
    assert "MINISEGNET_DATASET_MIRROR" in lines[0]


def test_train_pets_with_download_end_to_end(serve, capsys, monkeypatch, tmp_path):
    files = pet_archives()
    server = serve(files)
    patch_archives(monkeypatch, OxfordIIITPet, files, closed_port_url())
    monkeypatch.setenv(download.MIRROR_ENV, server.url)
    monkeypatch.setenv(data.registry.DATA_ENV, str(tmp_path / "data"))
    code = cli.main(["train", "--model", "fcn", "--dataset", "pets", "--download", "--image-size", "16",
                     "--batch-size", "2", "--epochs", "1", "--no-progress", "--no-plots",
                     "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "on pets 16x16: 2 train / 2 val images" in out
    assert os.path.isdir(tmp_path / "data" / "oxford-iiit-pet" / "images")
