"""The training loop: checkpoints, exact resume, Ctrl-C, divergence, and the validation numbers.

All runs are tiny (16 x 16 Shapes, a handful of images, resnet_tiny) so the file stays fast.
"""
import csv
import os
import signal

import numpy as np
import pytest

import minisegnet as ms
from minisegnet import checkpoint, train

TINY = dict(model="fcn", dataset="shapes", image_size=16, train_size=12, val_size=8, batch_size=4,
            epochs=2, lr=5e-3, seed=3, progress=False, log=None)


def tiny(out=None, **overrides):
    return train.Trainer(**{**TINY, **overrides}, out=None if out is None else str(out))


def weights(trainer):
    return trainer.model.state_dict()


def assert_same_state(a, b):
    sa, sb = weights(a), weights(b)
    assert list(sa) == list(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sorted(oa) == sorted(ob)
    for k in oa:
        np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)


def history_without_time(trainer):
    return [{k: v for k, v in row.items() if k != "time"} for row in trainer.history]


# ----------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("overrides, message", [
    (dict(model="unet"), "unknown model 'unet'"),
    (dict(dataset="cityscapes"), "unknown dataset 'cityscapes'"),
    (dict(lr=0.0), "lr must be a finite number > 0"),
    (dict(lr=float("nan")), "lr must be a finite number"),
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(batch_size=2.5), "batch_size must be an integer"),
    (dict(image_size=4), "image_size must be an int >= 8"),
    (dict(image_size=(16, 16, 3)), "image_size must be an int >= 8"),
    (dict(optimizer="rmsprop"), "optimizer must be one of sgd, adam, adamw"),
    (dict(output_stride=4), "output_stride must be 8, 16 or 32"),
    (dict(dataset="voc"), "give data_root"),
    (dict(learning_rate=0.1), "unknown config key(s) ['learning_rate']"),
    (dict(model="fcn", width=0.5), "width applies only to fast_scnn, bisenetv2, segformer_b0"),
    (dict(model="segformer_b0", width=0.0), "width must be a finite number > 0"),
    (dict(model="fast_scnn", backbone="resnet18"), "fast_scnn has its own backbone"),
    (dict(model="bisenetv2", output_stride=16), "output_stride does not apply"),
])
def test_make_config_rejects_bad_values(overrides, message):
    with pytest.raises(train.ConfigError) as info:
        train.make_config(**overrides)
    assert message in str(info.value)


def test_width_reaches_the_model():
    # SegFormer-B0's first stage has 32 channels (the paper's); width 0.5 halves them
    model = train.build_model(train.make_config(model="segformer_b0", width=0.5), num_classes=4)
    assert model.state_dict()["backbone.stages.0.patch_embed.proj.weight"].shape == (16, 3, 7, 7)
    full = train.build_model(train.make_config(model="segformer_b0"), num_classes=4)
    assert full.state_dict()["backbone.stages.0.patch_embed.proj.weight"].shape == (32, 3, 7, 7)


def test_make_config_fills_dataset_defaults():
    cfg = train.make_config()
    assert cfg["model"] == "deeplabv3" and cfg["dataset"] == "shapes" and cfg["image_size"] == [64, 64]
    strips = train.make_config(dataset="context")
    assert strips["image_size"] == [256, 32]
    assert train.make_config(image_size=(48, 24))["image_size"] == [48, 24]


def test_batch_larger_than_training_set_is_an_error(tmp_path):
    with pytest.raises(train.ConfigError, match="batch_size 16 is larger than the training set"):
        tiny(tmp_path, batch_size=16)


# ----------------------------------------------------------------------------- a short run
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    trainer = tiny(out)
    trainer.fit()
    return trainer, out


def test_fit_writes_checkpoints_history_and_config(finished_run):
    trainer, out = finished_run
    for name in ("last.npz", "best.npz", "history.csv", "config.json"):
        assert (out / name).is_file(), name
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(train.HISTORY_FIELDS)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [int(r["step"]) for r in rows] == [3, 6]           # 12 images / batch 4 = 3 steps per epoch
    assert all(np.isfinite(float(r["train_loss"])) for r in rows)
    # the poly schedule: the last step of epoch 1 is step index 2 of 6
    assert float(rows[0]["lr"]) == pytest.approx(5e-3 * (1 - 2 / 6) ** 0.9, rel=1e-5)
    state = checkpoint.load(out / "last.npz")
    assert state["epoch"] == 2 and state["step"] == 6
    cfg = state["config"]
    assert (cfg["model"], cfg["dataset"], cfg["num_classes"], cfg["image_size"]) == ("fcn", "shapes", 4, [16, 16])
    assert cfg["class_names"] == ["background", "circle", "square", "triangle"]
    best = checkpoint.load(out / "best.npz")
    scores = [float(r["val_mIoU"]) for r in rows]
    assert best["best_score"] == pytest.approx(max(scores), rel=1e-5)
    assert best["epoch"] == 1 + int(np.argmax(scores))


def _miou_by_hand(model, images, masks, num_classes):
    """mIoU of argmax predictions over a whole set, counted with plain NumPy."""
    model.eval()
    with ms.no_grad():
        pred = model(ms.tensor(images)).numpy().argmax(axis=1)
    ious = []
    for k in range(num_classes):
        inter = np.sum((pred == k) & (masks == k))
        union = np.sum((pred == k) | (masks == k))
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


def test_validation_score_and_reloaded_checkpoint_agree_with_hand_count(finished_run):
    trainer, out = finished_run
    model, config, _ = train.load_checkpoint(out / "last.npz")
    assert not model.training
    val = train.build_dataset(config, "val")
    images = np.stack([val[i][0] for i in range(len(val))])
    masks = np.stack([val[i][1] for i in range(len(val))])
    expected = _miou_by_hand(model, images, masks, config["num_classes"])
    assert trainer.history[-1]["val_mIoU"] == pytest.approx(expected, rel=1e-9)
    for k, v in trainer.model.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k], v)


# ----------------------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def straight_run():
    trainer = tiny(None)
    trainer.fit()
    return trainer


def _interrupt_at(trainer, step):
    original = trainer.train_step

    def train_step(images, masks):
        if trainer.step == step:
            raise KeyboardInterrupt
        return original(images, masks)
    trainer.train_step = train_step


@pytest.mark.parametrize("stop_step", [3, 4, 0], ids=["after-epoch-1", "mid-epoch-2", "before-step-1"])
def test_interrupt_and_resume_ends_with_identical_weights(tmp_path, straight_run, stop_step):
    first = tiny(tmp_path)
    _interrupt_at(first, stop_step)
    with pytest.raises(train.TrainingInterrupted) as info:
        first.fit()
    message = str(info.value)
    assert f"interrupted at step {stop_step}" in message and "--resume" in message
    assert info.value.checkpoint_path == str(tmp_path / "last.npz")
    assert checkpoint.load(tmp_path / "last.npz")["step"] == stop_step

    ms.manual_seed(1234)                       # the resumed run must not depend on the global state
    second = tiny(tmp_path)
    second.fit(resume=tmp_path / "last.npz")
    assert second.step == straight_run.step
    assert_same_state(second, straight_run)
    assert history_without_time(second) == history_without_time(straight_run)


def test_interrupt_during_validation_resumes_exactly(tmp_path, straight_run, monkeypatch):
    first = tiny(tmp_path)
    calls = []
    real_evaluate = train.evaluate

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)
    monkeypatch.setattr(train, "evaluate", evaluate)
    with pytest.raises(train.TrainingInterrupted, match="step 3"):
        first.fit()
    second = tiny(tmp_path)
    second.fit(resume=tmp_path / "last.npz")
    assert_same_state(second, straight_run)
    assert history_without_time(second) == history_without_time(straight_run)


def test_real_ctrl_c_during_the_epoch_end_save_waits_for_the_save(tmp_path, straight_run, monkeypatch):
    first = tiny(tmp_path)
    real_write = train.Trainer.write_history

    def write_history(self):
        if self.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)     # a real Ctrl-C while the epoch is being saved
        return real_write(self)
    monkeypatch.setattr(train.Trainer, "write_history", write_history)
    with pytest.raises(train.TrainingInterrupted, match="interrupted at step 3"):
        first.fit()
    saved = checkpoint.load(tmp_path / "last.npz")
    assert (saved["epoch"], saved["step"], len(saved["history"])) == (1, 3, 1)
    assert (tmp_path / "history.csv").read_text().count("\n") == 2      # header + epoch 1
    monkeypatch.undo()
    second = tiny(tmp_path)
    second.fit(resume=tmp_path / "last.npz")
    assert_same_state(second, straight_run)


def test_resume_with_more_epochs_continues_the_count(tmp_path):
    tiny(tmp_path, epochs=1).fit()
    longer = tiny(tmp_path, epochs=2)
    longer.fit(resume=tmp_path / "last.npz")
    assert [row["epoch"] for row in longer.history] == [1, 2] and longer.step == 6


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    tiny(tmp_path, epochs=1).fit()
    other = tiny(tmp_path, model="pspnet")
    with pytest.raises(train.ConfigError, match="it was trained with model='fcn'"):
        other.resume(tmp_path / "last.npz")


def test_load_checkpoint_rejects_foreign_and_mismatched_files(tmp_path, finished_run):
    _, out = finished_run
    ms.save({"weights": np.zeros(3)}, tmp_path / "plain.npz")
    with pytest.raises(checkpoint.CheckpointError, match="not a training checkpoint"):
        train.load_checkpoint(tmp_path / "plain.npz")
    state = checkpoint.load(out / "last.npz")
    state["config"]["num_classes"] = 7
    ms.save(state, tmp_path / "wrong.npz")
    with pytest.raises(checkpoint.CheckpointError, match="does not fit model 'fcn'"):
        train.load_checkpoint(tmp_path / "wrong.npz")


# ----------------------------------------------------------------------------- divergence
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = tiny(tmp_path)
    original = trainer.model.loss

    def loss(images, masks, **kwargs):
        losses = original(images, masks, **kwargs)
        if trainer.step == 4:                  # the second step of epoch 2
            losses["loss"] = losses["loss"] * float("nan")
        return losses
    trainer.model.loss = loss
    with pytest.raises(train.TrainingDiverged) as info:
        trainer.fit()
    message = str(info.value)
    assert "the loss became nan at step 5 (epoch 2, batch 2)" in message
    assert "last good checkpoint" in message and "last.npz" in message
    kept = checkpoint.load(tmp_path / "last.npz")
    assert kept["step"] == 3 and kept["epoch"] == 1
    assert all(np.isfinite(v).all() for v in kept["model"].values())


def test_huge_learning_rate_diverges_without_saving_non_finite_weights(tmp_path):
    trainer = tiny(tmp_path, lr=1e30, epochs=1)
    with pytest.raises(train.TrainingDiverged, match=r"(loss became|is not finite).*step \d+ \(epoch 1"):
        trainer.fit()
    if (tmp_path / "last.npz").exists():
        kept = checkpoint.load(tmp_path / "last.npz")
        assert all(np.isfinite(v).all() for v in kept["model"].values())


# ----------------------------------------------------------------------------- Ctrl-C guard
def test_ctrl_c_inside_the_update_is_delayed_to_the_end_of_the_step():
    steps, before = [], signal.getsignal(signal.SIGINT)
    with train._DeferredInterrupt() as guard:
        with pytest.raises(KeyboardInterrupt):
            with guard.critical():
                os.kill(os.getpid(), signal.SIGINT)
                steps.append("update finished")      # still runs: the interrupt waits
        assert steps == ["update finished"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)      # outside the section: at once
            steps.append("never")
    assert steps == ["update finished"]
    assert signal.getsignal(signal.SIGINT) is before
