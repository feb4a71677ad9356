"""The ``minisegnet`` command line, run in-process through ``cli.main(argv)`` (one real subprocess).

Every bad argument must give exactly one line on stderr and exit status 2, never a traceback.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import minisegnet as ms
from minisegnet import checkpoint, cli, train
from minisegnet.data import Shapes

TINY = ["--model", "fcn", "--image-size", "16", "--train-size", "8", "--val-size", "4",
        "--batch-size", "4", "--epochs", "2", "--lr", "0.005", "--no-progress"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "error:" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_version_in_a_real_subprocess():
    result = subprocess.run([sys.executable, "-m", "minisegnet", "--version"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    assert result.stdout.strip() == f"minisegnet {ms.__version__}"


def test_help_and_no_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "train" in out and "evaluate" in out and "predict" in out
    code, out, _ = run(capsys)
    assert code == 2 and "usage: minisegnet" in out


def test_models_and_datasets_are_listed_with_descriptions(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert {"fcn", "pspnet", "deeplabv3"} <= set(names)
    assert all(len(line.split()) > 2 for line in out.strip().splitlines())
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "shapes" in out and "context" in out and "voc" in out


# ----------------------------------------------------------------------------- train end to end
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_run")
    code = cli.main(["train", *TINY, "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_every_artefact(trained):
    for name in ("last.npz", "best.npz", "history.csv", "config.json", "curves.png", "predictions.png",
                 "confusion.png"):
        assert (trained / name).is_file(), name
    for name in ("curves.png", "predictions.png", "confusion.png"):
        with Image.open(trained / name) as im:
            assert im.size[0] > 100 and im.size[1] > 100


def test_train_prints_the_class_table_and_the_final_miou(capsys, tmp_path):
    code, out, err = run(capsys, "train", *TINY, "--epochs", "1", "--no-plots", "--out", tmp_path)
    assert code == 0, err
    assert "Class" in out and "IoU" in out and "triangle" in out
    line = [l for l in out.splitlines() if l.startswith("val mIoU = ")]
    assert len(line) == 1
    state = checkpoint.load(tmp_path / "last.npz")
    assert float(line[0].split()[3]) == pytest.approx(state["history"][-1]["val_mIoU"], abs=5e-5)


def test_evaluate_matches_the_last_validation_and_prints_json(capsys, trained):
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained / "last.npz", "--json")
    assert code == 0, err
    result = json.loads(out)
    history = checkpoint.load(trained / "last.npz")["history"]
    assert result["mIoU"] == pytest.approx(history[-1]["val_mIoU"], rel=1e-9)
    matrix = np.array(result["confusion_matrix"])
    assert matrix.sum() == 4 * 16 * 16                      # every validation pixel counted once
    assert set(result["classes"]) == {"background", "circle", "square", "triangle"}
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained / "last.npz")
    assert code == 0 and "val mIoU = " in out and "circle" in out


def test_predict_writes_masks_and_overlays(capsys, trained, tmp_path):
    image, _ = Shapes(1, image_size=24, split="test")[0]
    path = tmp_path / "scene.png"
    Image.fromarray((image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(path)
    for extra in ([], ["--native"]):
        out_dir = tmp_path / ("native" if extra else "resized")
        code, out, err = run(capsys, "predict", "--checkpoint", trained / "best.npz", path, "--out", out_dir, *extra)
        assert code == 0, err
        for suffix in ("mask", "overlay", "labels"):
            with Image.open(out_dir / f"scene_{suffix}.png") as im:
                assert im.size == (24, 24)
        labels = np.array(Image.open(out_dir / "scene_labels.png"))
        assert labels.max() < 4


def test_resume_through_the_cli_extends_the_run(capsys, tmp_path):
    code, _, err = run(capsys, "train", *TINY, "--epochs", "1", "--no-plots", "--out", tmp_path)
    assert code == 0, err
    code, out, err = run(capsys, "train", "--out", tmp_path, "--resume", "--epochs", "2", "--no-plots",
                         "--no-progress")
    assert code == 0, err
    assert "resuming" in out
    assert [row["epoch"] for row in checkpoint.load(tmp_path / "last.npz")["history"]] == [1, 2]


def test_ctrl_c_saves_and_exits_130_with_resume_hint(capsys, tmp_path, monkeypatch):
    real_step = train.Trainer.train_step

    def train_step(self, images, masks):
        if self.step == 1:
            raise KeyboardInterrupt
        return real_step(self, images, masks)
    monkeypatch.setattr(train.Trainer, "train_step", train_step)
    code, out, err = run(capsys, "train", *TINY, "--out", tmp_path)
    assert code == 130
    assert "interrupted at step 1" in err and f"--out {tmp_path} --resume" in err
    assert "Traceback" not in err
    assert checkpoint.load(tmp_path / "last.npz")["step"] == 1


def test_diverging_run_exits_1_naming_the_step(capsys, tmp_path):
    code, out, err = run(capsys, "train", *TINY, "--lr", "1e30", "--out", tmp_path)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "step" in lines[0] and "epoch" in lines[0]


# ----------------------------------------------------------------------------- bad arguments
def test_bad_training_arguments(capsys, tmp_path):
    cases = [
        (["train", "--model", "unet"], ["unknown model 'unet'", "deeplabv3"]),
        (["train", "--dataset", "cityscapes"], ["unknown dataset 'cityscapes'", "shapes"]),
        (["train", "--dataset", "voc"], ["data_root"]),
        (["train", "--dataset", "voc", "--data-root", tmp_path / "nowhere"], ["not found", "nowhere"]),
        (["train", "--dataset", "folder", "--data-root", tmp_path], ["images", "masks"]),
        (["train", "--epochs", "0"], ["--epochs", "positive integer"]),
        (["train", "--lr", "abc"], ["--lr", "'abc'"]),
        (["train", "--image-size", "4"], ["--image-size", "sides >= 8"]),
        (["train", "--output-stride", "4"], ["--output-stride", "invalid choice"]),
        (["train", "--optimizer", "rmsprop"], ["--optimizer", "invalid choice"]),
        (["train", "--model", "fcn8s", "--output-stride", "8", "--image-size", "32"], ["output_stride"]),
        (["train", "--model", "fcn8s", "--image-size", "31"], ["31x31 is too small for fcn8s", "32x32"]),
        (["train", "--backbone", "vgg_tiny", "--image-size", "16x40"], ["16x40", "vgg_tiny", "32x32"]),
        (["train", "--resume", tmp_path / "missing.npz"], ["checkpoint not found", "missing.npz"]),
        (["frobnicate"], ["invalid choice", "frobnicate"]),
    ]
    for argv, fragments in cases:
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, *fragments)


def test_bad_checkpoint_arguments(capsys, tmp_path, trained):
    text = tmp_path / "notes.npz"
    text.write_text("not a zip file")
    other = tmp_path / "other.npz"
    state = checkpoint.load(trained / "last.npz")
    state["config"]["model"] = "deeplabv3"                   # weights of fcn, config says deeplabv3
    ms.save(state, other)
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    cases = [
        (["evaluate", "--checkpoint", tmp_path / "missing.npz"], ["not found", "missing.npz"]),
        (["evaluate", "--checkpoint", tmp_path], ["is a folder"]),
        (["evaluate", "--checkpoint", text], ["cannot read checkpoint", "notes.npz"]),
        (["evaluate", "--checkpoint", other], ["does not fit model 'deeplabv3'"]),
        (["evaluate", "--checkpoint", trained / "last.npz", "--dataset", "context"],
         ["predicts 4 classes", "'context' has 5"]),
        (["evaluate", "--checkpoint", trained / "last.npz", "--dataset", "mnist"], ["unknown dataset 'mnist'"]),
        (["evaluate"], ["--checkpoint"]),
        (["predict", "--checkpoint", trained / "last.npz", tmp_path / "nope.png", "--out", tmp_path / "o"],
         ["IMAGE", "nope.png"]),
        (["predict", "--checkpoint", trained / "last.npz", image, "--out", image], ["not a folder"]),
        (["predict", "--checkpoint", other, image, "--out", tmp_path / "o"], ["does not fit"]),
        (["train", "--resume", trained / "last.npz", "--model", "pspnet", "--out", tmp_path / "r"],
         ["trained with model='fcn'", "pspnet"]),
        (["bench", "no_such_benchmark"], ["unknown benchmark 'no_such_benchmark'", "zoo"]),
    ]
    for argv, fragments in cases:
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, *fragments)


def test_cuda_without_a_gpu_is_one_line(capsys, trained, monkeypatch):
    # a machine whose driver sees no GPU, whatever this one has (the probe's cached answer)
    monkeypatch.setattr(ms.backend, "_cuda_problem", "no NVIDIA GPU: the CUDA driver sees 0 devices")
    for argv in (["train", *TINY, "--device", "cuda"],
                 ["evaluate", "--checkpoint", trained / "last.npz", "--device", "cuda"]):
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, "cuda")


def test_bench_without_the_benchmarks_folder(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "benchmark_dirs", lambda: [str(tmp_path / "benchmarks")])
    code, _, err = run(capsys, "bench", "zoo")
    assert_one_line_error(code, err, "no benchmarks/ folder found")


def test_bench_runs_a_script_with_its_arguments(capsys, monkeypatch, tmp_path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "bench_echo.py").write_text("import sys\nprint('ARGS', sys.argv[1:])\nsys.exit(3)\n")
    monkeypatch.setattr(cli, "benchmark_dirs", lambda: [str(folder)])
    code, out, _ = run(capsys, "bench", "echo", "--quick", "--steps", "5")
    assert code == 3 and "ARGS ['--quick', '--steps', '5']" in out


def test_grade_is_wired_to_the_grader(capsys, tmp_path):
    code, out, err = run(capsys, "grade", tmp_path / "nothing_here")
    assert code == 2 and "Traceback" not in err


def test_bench_zoo_smoke_prints_a_markdown_table(capsys, tmp_path):
    if cli.find_benchmark("zoo") is None:
        pytest.skip("benchmarks/ is not next to the package")
    code, out, err = run(capsys, "bench", "zoo", "--quick", "--steps", "2", "--models", "fcn",
                         "--datasets", "shapes", "--results", tmp_path)     # never the real results
    assert (tmp_path / "bench_zoo_shapes.json").is_file()
    assert code == 0, err
    assert "| dataset | model | seed | steps | val mIoU |" in out
    assert "| shapes | fcn | 0 | 2 |" in out
