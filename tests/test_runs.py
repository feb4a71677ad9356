"""Run folders that never lose work: refusals, failed writes, permissions, broken pipes, predict.

Failures are produced the way the OS produces them where a test can: a file-size limit
(``resource.setrlimit(RLIMIT_FSIZE)`` in a child process), ``/proc`` (no folders can be made
there), a path under a regular file (ENOTDIR) and ``/dev/full`` (ENOSPC on every write). The
tests run as root in CI, and root ignores ``chmod``'s read-only bits, so a folder that turns
read-only (EACCES) and an unreadable checkpoint are simulated by making the OS call raise the
``OSError`` the kernel would give. Every check asserts one line on stderr, no traceback, the
exit status, and the previous checkpoint intact.
"""
import errno
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import minisegnet as ms
from minisegnet import checkpoint, cli, fileio, models, predict, train
from minisegnet.data import Shapes
from minisegnet.tensor import tensor

TINY = ["--model", "fcn", "--image-size", "16", "--train-size", "8", "--val-size", "4",
        "--batch-size", "4", "--epochs", "1", "--lr", "0.005", "--no-progress", "--no-plots"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err, code, expected_code, *fragments):
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("minisegnet: error: ")
    for fragment in fragments:
        assert str(fragment) in lines[0], lines[0]
    return lines[0]


def no_temporaries(folder):
    return [n for n in os.listdir(folder) if n.endswith(".tmp")] == []


@pytest.fixture
def run_a(capsys, tmp_path):
    out = tmp_path / "a"
    code, _, err = run(capsys, "train", *TINY, "--out", out)
    assert code == 0, err
    return out


def child(argv, preexec_fn=None, stdout=subprocess.PIPE):
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "minisegnet", *map(str, argv)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=300, preexec_fn=preexec_fn)


# ----------------------------------------------------------------------------- refusals
def test_a_second_run_into_a_run_folder_is_refused_and_force_replaces_it(capsys, run_a):
    before = (run_a / "last.npz").read_bytes()
    code, _, err = run(capsys, "train", *TINY, "--seed", "5", "--out", run_a)
    one_line(err, code, 2, run_a, "already holds a run", "--resume", "--out", "--force")
    assert (run_a / "last.npz").read_bytes() == before
    code, _, err = run(capsys, "train", *TINY, "--seed", "5", "--out", run_a, "--force")
    assert code == 0, err
    assert checkpoint.load(run_a / "last.npz")["config"]["seed"] == 5


def test_resume_writes_into_its_own_folder_and_refuses_another_run(capsys, run_a, tmp_path):
    b = tmp_path / "b"
    code, _, err = run(capsys, "train", *TINY, "--seed", "7", "--out", b)
    assert code == 0, err
    b_files = {n: (b / n).read_bytes() for n in ("last.npz", "best.npz", "history.csv", "config.json")}
    code, _, err = run(capsys, "train", "--resume", run_a / "last.npz", "--out", b, "--epochs", "2")
    one_line(err, code, 2, b, "another run", "--force")
    assert {n: (b / n).read_bytes() for n in b_files} == b_files          # B untouched
    code, out, err = run(capsys, "train", "--resume", run_a / "last.npz", "--epochs", "2", "--no-progress",
                         "--no-plots")
    assert code == 0, err
    assert [row["epoch"] for row in checkpoint.load(run_a / "last.npz")["history"]] == [1, 2]


def test_python_fit_refuses_a_run_folder_too(run_a):
    with pytest.raises(train.RunFolderError, match="already holds a run"):
        train.fit(model="fcn", image_size=16, train_size=8, val_size=4, batch_size=4, epochs=1,
                  out=run_a, progress=False, log=None)


def test_changing_lr_on_resume_is_refused_the_same_from_cli_and_python(capsys, run_a):
    code, _, err = run(capsys, "train", "--resume", run_a / "last.npz", "--lr", "0.01", "--no-progress")
    line = one_line(err, code, 2, "lr=0.005", "lr=0.01")
    with pytest.raises(train.ConfigError) as from_checkpoint:
        train.Trainer.from_checkpoint(run_a / "last.npz", lr=0.01, progress=False, log=None)
    saved = checkpoint.load(run_a / "last.npz")["config"]
    config = {k: v for k, v in saved.items() if k in train.DEFAULTS}
    with pytest.raises(train.ConfigError) as from_fit:
        train.Trainer({**config, "lr": 0.01}, out=run_a, progress=False, log=None).fit(resume=run_a / "last.npz")
    assert str(from_checkpoint.value) in line and str(from_fit.value) == str(from_checkpoint.value)
    # a setting the policy lets change is accepted by both
    assert "epochs" in train.RESUME_MAY_CHANGE and "lr" not in train.RESUME_MAY_CHANGE
    assert train.Trainer.from_checkpoint(run_a / "last.npz", epochs=2, progress=False, log=None).step == 2


# ----------------------------------------------------------------------------- failed writes
def test_file_size_limit_keeps_the_last_checkpoint(run_a):
    before = (run_a / "last.npz").read_bytes()
    assert len(before) > 20000

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
    result = child(["train", "--resume", run_a / "last.npz", "--epochs", "2", "--no-progress", "--no-plots"],
                   preexec_fn=limit)
    one_line(result.stderr, result.returncode, 1, run_a / "last.npz", "File too large", "--resume",
             "last good checkpoint")
    assert (run_a / "last.npz").read_bytes() == before
    assert checkpoint.load(run_a / "last.npz")["epoch"] == 1
    assert no_temporaries(run_a)


@pytest.mark.parametrize("out", ["/proc/minisegnet_run", "under_a_file/run"])
def test_an_output_folder_that_cannot_be_made_is_one_line(capsys, tmp_path, out):
    if out.startswith("under"):
        (tmp_path / "under_a_file").write_text("a regular file")
        out = tmp_path / out
    code, _, err = run(capsys, "train", *TINY, "--out", out)
    one_line(err, code, 1, "cannot create the run folder", out)


def test_folder_turning_read_only_mid_run(capsys, run_a, monkeypatch):
    before = (run_a / "last.npz").read_bytes()
    real = fileio.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if os.path.samefile(dir, run_a) and kwargs.get("prefix", "").startswith(".last.npz"):
            raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, "x.tmp"))
        return real(*args, dir=dir, **kwargs)
    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    code, _, err = run(capsys, "train", "--resume", run_a / "last.npz", "--epochs", "2", "--no-progress",
                       "--no-plots")
    one_line(err, code, 1, run_a / "last.npz", "Permission denied", "--resume")
    assert (run_a / "last.npz").read_bytes() == before


def test_full_disk_while_saving_leaves_no_temporary(capsys, run_a, monkeypatch):
    before = (run_a / "last.npz").read_bytes()

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(fileio.os, "fsync", fsync)
    code, _, err = run(capsys, "train", "--resume", run_a / "last.npz", "--epochs", "2", "--no-progress",
                       "--no-plots")
    one_line(err, code, 1, run_a / "last.npz", "No space left on device")
    assert (run_a / "last.npz").read_bytes() == before
    assert no_temporaries(run_a)


def test_evaluate_json_into_a_full_device_is_one_line(run_a):
    with open("/dev/full", "w") as full:
        result = child(["evaluate", "--checkpoint", run_a / "last.npz", "--json"], stdout=full)
    one_line(result.stderr, result.returncode, 1, "No space left on device")


@pytest.mark.parametrize("command", [["datasets"], ["models"], ["predict", "--help"]])
def test_a_closed_pipe_ends_quietly(command):
    read_end, write_end = os.pipe()
    os.close(read_end)                        # the reader is gone before anything is written
    try:
        result = child(command, stdout=write_end)
    finally:
        os.close(write_end)
    assert result.stderr == "" and result.returncode in (0, 1)


# ----------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        checkpoint.save({"w": np.zeros(2)}, tmp_path / "w.npz")
        with fileio.atomic_write(tmp_path / "t.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    for name in ("w.npz", "t.txt"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask


def test_unreadable_checkpoint_is_a_permission_error_not_corrupt(capsys, run_a, monkeypatch):
    def no_access(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)
    monkeypatch.setattr(checkpoint, "open", no_access, raising=False)
    code, _, err = run(capsys, "evaluate", "--checkpoint", run_a / "last.npz")
    line = one_line(err, code, 1, "Permission denied", run_a / "last.npz")
    assert "corrupt" not in line


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_write(target, "w") as f:
            f.write("half of the new")
            raise RuntimeError("stopped half-way")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["report.json"]
    error = OSError(errno.EFBIG, "File too large", str(target))
    assert fileio.describe_os_error(error) == \
        f"cannot write {target}: File too large (the file-size limit, `ulimit -f`, was reached)"


# ----------------------------------------------------------------------------- image size
def test_smallest_input_sizes_are_the_real_ones():
    vgg = models.create("fcn8s", num_classes=2)
    assert vgg.min_input_size == models.zoo.min_input_size("fcn8s") == 32
    vgg.eval()
    assert vgg(tensor(np.zeros((1, 3, 32, 32), np.float32))).shape == (1, 2, 32, 32)
    with pytest.raises(Exception):                  # the backbone itself cannot take 31 pixels
        vgg.backbone(tensor(np.zeros((1, 3, 31, 31), np.float32)))
    with pytest.raises(ValueError, match="at least 32 x 32"):
        vgg(tensor(np.zeros((1, 3, 31, 40), np.float32)))
    resnet = models.create("deeplabv3", num_classes=2)
    resnet.eval()
    assert resnet.min_input_size == 1
    assert resnet(tensor(np.zeros((1, 3, 8, 8), np.float32))).shape == (1, 2, 8, 8)


# hand-computed: SegNet pools 2x2 three times (2**3 = 8); SegFormer-B0 embeds with a 7x7 conv,
# stride 4, padding 3 ((29 + 6 - 7) // 4 + 1 = 8 tokens) and its first attention reduces by 8x8
@pytest.mark.parametrize("name,smallest", [("segnet", 8), ("segformer_b0", 29), ("fast_scnn", 1),
                                           ("bisenetv2", 1)])
def test_smallest_input_sizes_of_the_own_backbone_models(name, smallest):
    model = models.create(name, num_classes=2)
    model.eval()
    assert model.min_input_size == models.zoo.min_input_size(name) == smallest
    assert model(tensor(np.zeros((1, 3, max(smallest, 2), 40), np.float32))).shape[2:] == (max(smallest, 2), 40)
    if smallest > 1:
        with pytest.raises(Exception):              # the network itself cannot take one pixel less
            model.decode_head(model.backbone(tensor(np.zeros((1, 3, smallest - 1, 40), np.float32))))
        with pytest.raises(ValueError, match=f"at least {smallest} x {smallest}"):
            model(tensor(np.zeros((1, 3, smallest - 1, 40), np.float32)))


def test_too_small_image_size_fails_before_any_work(capsys, tmp_path):
    out = tmp_path / "small"
    code, _, err = run(capsys, "train", *TINY[2:], "--model", "fcn8s", "--image-size", "24", "--out", out)
    one_line(err, code, 2, "24x24", "fcn8s", "32x32")
    assert not out.exists()


# ----------------------------------------------------------------------------- predict
def _png(path, seed, size=20, fmt=None):
    image, _ = Shapes(1, image_size=size, split="test", seed=seed)[0]
    Image.fromarray((image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(path, format=fmt)


def test_predict_keeps_colliding_names_apart_and_skips_unreadable_images(capsys, run_a, tmp_path):
    _png(tmp_path / "scene.png", 1)
    _png(tmp_path / "scene.jpg", 2, fmt="JPEG")
    (tmp_path / "broken.png").write_text("not an image")
    out = tmp_path / "masks"
    code, stdout, err = run(capsys, "predict", "--checkpoint", run_a / "last.npz", tmp_path / "scene.png",
                            tmp_path / "broken.png", tmp_path / "scene.jpg", "--out", out)
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "broken.png" in lines[0] and "1 of 3 images were skipped" in lines[1]
    expected = {f"scene_{ext}_{kind}.png" for ext in ("png", "jpg") for kind in ("labels", "mask", "overlay")}
    assert set(os.listdir(out)) == expected
    for name in expected:
        assert str(out / name) in stdout
    with Image.open(out / "scene_png_labels.png") as a, Image.open(out / "scene_jpg_labels.png") as b:
        assert a.size == b.size == (20, 20)


def test_output_stems():
    assert predict.output_stems(["a/x.png", "b/y.jpg"]) == ["x", "y"]
    assert predict.output_stems(["x.png", "x.jpg", "d/x.png"]) == ["x_png", "x_jpg", "x_png_2"]


def test_predict_help_states_the_default_opacity_the_code_uses(capsys):
    run(capsys, "predict", "--help")
    code, out, _ = run(capsys, "predict", "--help")
    assert code == 0 and f"(default {predict.DEFAULT_ALPHA})" in " ".join(out.split())
    assert cli.build_parser()._subparsers._group_actions[0].choices["predict"].get_default("alpha") \
        == predict.DEFAULT_ALPHA


def test_predict_into_an_unwritable_folder_is_one_line(capsys, run_a, tmp_path):
    _png(tmp_path / "scene.png", 1)
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "predict", "--checkpoint", run_a / "last.npz", tmp_path / "scene.png",
                       "--out", tmp_path / "file" / "masks")
    one_line(err, code, 1, "cannot write", "Not a directory")


def test_evaluate_and_predict_check_the_size_against_the_model(capsys, tmp_path):
    out = tmp_path / "vgg"
    code, _, err = run(capsys, "train", *TINY[2:], "--model", "fcn", "--backbone", "vgg_tiny", "--image-size", "32",
                       "--out", out)
    assert code == 0, err
    code, _, err = run(capsys, "evaluate", "--checkpoint", out / "last.npz", "--image-size", "16")
    one_line(err, code, 2, "16x16", "vgg_tiny", "32x32")
    _png(tmp_path / "small.png", 1, size=20)
    code, stdout, err = run(capsys, "predict", "--checkpoint", out / "last.npz", tmp_path / "small.png",
                            "--out", tmp_path / "native", "--native")
    assert code == 1 and "small.png is 20x20, smaller than the 32x32" in err and "Traceback" not in err
    code, stdout, err = run(capsys, "predict", "--checkpoint", out / "last.npz", tmp_path / "small.png",
                            "--out", tmp_path / "resized")
    assert code == 0, err
    with Image.open(tmp_path / "resized" / "small_labels.png") as im:
        assert im.size == (20, 20)


def test_force_on_resume_into_another_run_leaves_none_of_its_files(capsys, run_a, tmp_path):
    b = tmp_path / "b"
    code, _, err = run(capsys, "train", *TINY, "--seed", "7", "--out", b)
    assert code == 0, err
    (b / "curves.png").write_bytes(b"an old figure")
    code, _, err = run(capsys, "train", "--resume", run_a / "last.npz", "--out", b, "--epochs", "2", "--force",
                       "--no-progress", "--no-plots")
    assert code == 0, err
    assert not (b / "curves.png").exists()
    assert checkpoint.load(b / "last.npz")["config"]["seed"] == 0          # A's run, not B's seed 7
    if (b / "best.npz").exists():                      # only if epoch 2 improved on A's best
        assert checkpoint.load(b / "best.npz")["config"]["seed"] == 0
    assert (run_a / "last.npz").exists() and checkpoint.load(run_a / "last.npz")["epoch"] == 1


def test_a_second_fit_of_the_same_trainer_continues_its_own_run(tmp_path):
    trainer = train.Trainer(model="fcn", image_size=16, train_size=8, val_size=4, batch_size=4, epochs=1,
                            out=tmp_path, progress=False, log=None)
    trainer.fit()
    trainer.config["epochs"] = 2
    trainer.fit()
    assert [row["epoch"] for row in checkpoint.load(tmp_path / "last.npz")["history"]] == [1, 2]


def test_run_folder_removed_mid_run_is_one_line(capsys, tmp_path, monkeypatch):
    import shutil
    out, calls, real_evaluate = tmp_path / "gone", [], train.evaluate

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:                      # validation of epoch 2: someone deletes the folder
            shutil.rmtree(out)
        return real_evaluate(*args, **kwargs)
    monkeypatch.setattr(train, "evaluate", evaluate)
    code, _, err = run(capsys, "train", *TINY, "--epochs", "2", "--out", out)
    one_line(err, code, 1, out / "last.npz", "No such file or directory", f"the folder {out} is missing",
             "no checkpoint was saved")
