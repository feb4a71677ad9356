"""``minisegnet train|evaluate|predict --device cuda`` end to end, in-process through ``cli.main``.

On a machine without a GPU this runs on the strict CuPy stand-in (see ``conftest.py``): every
array of the run is a device array that refuses host conversion, so a NumPy-only call anywhere
in training, checkpointing, evaluation or prediction fails here. The oracle is the same tiny
run on the CPU (which the rest of the suite checks against PyTorch): same seed, same data,
so the losses, the mIoU and the predicted labels agree.
"""
import json

import numpy as np
import pytest
from PIL import Image

import minisegnet as ms
from conftest import CUPY_KIND
from minisegnet import checkpoint, cli
from minisegnet.data import Shapes

pytestmark = pytest.mark.gpu

TINY = ["--model", "fcn", "--image-size", "16", "--train-size", "8", "--val-size", "4",
        "--batch-size", "4", "--epochs", "1", "--lr", "0.005", "--no-progress", "--no-plots",
        "--seed", "3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not ms.cuda.is_available():
        pytest.skip("no usable CUDA device")
    out = {}
    for device in ("cpu", "cuda"):
        out[device] = tmp_path_factory.mktemp(f"run_{device}")
        assert cli.main(["train", *TINY, "--device", device, "--out", str(out[device])]) == 0
    return out


def test_train_on_cuda_matches_cpu(runs):
    cpu = checkpoint.load(runs["cpu"] / "last.npz")["history"]
    cuda = checkpoint.load(runs["cuda"] / "last.npz")["history"]
    assert len(cpu) == len(cuda) == 1
    for key in ("train_loss", "val_mIoU", "val_mDice", "val_aAcc"):
        assert cuda[-1][key] == pytest.approx(cpu[-1][key], rel=1e-3, abs=1e-4), key


def test_evaluate_on_cuda_matches_cpu(runs, capsys):
    results = {}
    for device in ("cpu", "cuda"):
        code = cli.main(["evaluate", "--checkpoint", str(runs["cuda"] / "last.npz"), "--json",
                         "--device", device])
        out, err = capsys.readouterr()
        assert code == 0, err
        results[device] = json.loads(out)
    assert results["cuda"]["mIoU"] == pytest.approx(results["cpu"]["mIoU"], abs=1e-6)
    np.testing.assert_array_equal(results["cuda"]["confusion_matrix"], results["cpu"]["confusion_matrix"])


def test_predict_on_cuda_matches_cpu(runs, tmp_path, capsys):
    image, _ = Shapes(1, image_size=20, split="test")[0]
    path = tmp_path / "scene.png"
    Image.fromarray((image.transpose(1, 2, 0) * 255).astype(np.uint8)).save(path)
    labels = {}
    for device in ("cpu", "cuda"):
        code = cli.main(["predict", "--checkpoint", str(runs["cuda"] / "best.npz"), str(path),
                         "--out", str(tmp_path / device), "--device", device])
        assert code == 0, capsys.readouterr().err
        labels[device] = np.array(Image.open(tmp_path / device / "scene_labels.png"))
    assert labels["cuda"].shape == (20, 20)
    np.testing.assert_array_equal(labels["cuda"], labels["cpu"])


@pytest.mark.skipif(CUPY_KIND != "standin", reason="simulates a machine without a GPU on the stand-in")
def test_cuda_on_a_machine_without_gpu_is_one_line(capsys, monkeypatch, tmp_path):
    import cupy_standin as cs
    from minisegnet import backend
    monkeypatch.setattr(backend, "_cuda_problem", None)
    with cs.simulate(device_count=0):
        code = cli.main(["train", *TINY, "--device", "cuda", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "no NVIDIA driver or no GPU" in err
    monkeypatch.setattr(backend, "_cuda_problem", None)
