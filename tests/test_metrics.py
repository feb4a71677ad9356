"""IoU, Dice and the confusion matrix: hand-computed cases and an independent pixel loop."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minisegnet as ms
from minisegnet.metrics import ConfusionMatrix, dice, iou


# ----------------------------------------------------------------------------- binary masks
def test_iou_dice_hand_computed():
    a = np.array([[1, 1, 0], [0, 1, 0]])
    b = np.array([[1, 0, 0], [1, 1, 0]])
    # intersection: (0,0), (1,1) -> 2; union: 4; |A| + |B| = 3 + 3
    assert iou(a, b) == pytest.approx(2 / 4)
    assert dice(a, b) == pytest.approx(4 / 6)


def test_iou_matches_syllabus_quiz_answer():
    rng = np.random.default_rng(0)
    a = rng.integers(2, size=(10, 10))
    b = rng.integers(2, size=(10, 10))
    assert iou(a, b) == pytest.approx((a & b).sum() / (a | b).sum())
    assert dice(a, b) == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_iou_dice_bool_tensor_and_any_shape(device):
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 4, 5)) > 0.5
    b = rng.random((2, 3, 4, 5)) > 0.5
    expected = np.logical_and(a, b).sum() / np.logical_or(a, b).sum()
    assert iou(ms.tensor(a, device=device), ms.tensor(b, device=device)) == pytest.approx(expected)
    assert iou(a.astype(np.uint8), b.astype(np.float32)) == pytest.approx(expected)


def test_empty_masks_agree_perfectly_without_warning():
    empty = np.zeros((4, 4), dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert iou(empty, empty) == 1.0
        assert dice(empty, empty) == 1.0
    full = np.ones((4, 4), dtype=int)
    assert iou(empty, full) == 0.0 and dice(full, empty) == 0.0


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_dice_iou_relation(pairs):
    a = np.array([p for p, _ in pairs])
    b = np.array([q for _, q in pairs])
    j, d = iou(a, b), dice(a, b)
    assert 0 <= j <= d <= 1
    assert d == pytest.approx(2 * j / (1 + j))


def test_binary_mask_errors():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 2\).*\(2, 3\)"):
        iou(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"a must be a binary mask.*\[2, 3\]"):
        iou(np.array([0, 1, 2, 3]), np.array([0, 1, 1, 1]))
    with pytest.raises(ValueError, match=r"b must be a binary mask.*\[0.5\]"):
        dice(np.array([0, 1]), np.array([0.5, 1.0]))
    with pytest.raises(TypeError, match="a must be a NumPy/CuPy array"):
        iou("mask", np.zeros(2))


# ----------------------------------------------------------------------------- confusion matrix
def pixel_loop_scores(preds, targets, num_classes, ignore_index=255):
    """Per-class IoU / Dice / Acc and pixel accuracy by visiting every pixel in Python."""
    inter = [0] * num_classes
    in_target = [0] * num_classes
    in_pred = [0] * num_classes
    correct = counted = 0
    for p, t in zip(np.ravel(preds).tolist(), np.ravel(targets).tolist()):
        if t == ignore_index:
            continue
        counted += 1
        in_target[t] += 1
        in_pred[p] += 1
        if p == t:
            inter[t] += 1
            correct += 1
    nan = float("nan")
    iou_k = [inter[k] / (in_target[k] + in_pred[k] - inter[k]) if in_target[k] + in_pred[k] else nan
             for k in range(num_classes)]
    dice_k = [2 * inter[k] / (in_target[k] + in_pred[k]) if in_target[k] + in_pred[k] else nan
              for k in range(num_classes)]
    acc_k = [inter[k] / in_target[k] if in_target[k] else nan for k in range(num_classes)]
    return np.array(iou_k), np.array(dice_k), np.array(acc_k), correct / counted


def test_confusion_matrix_hand_computed():
    cm = ConfusionMatrix(2)
    cm.update(np.array([[0, 1], [1, 1]]), np.array([[0, 0], [1, 1]]))
    np.testing.assert_array_equal(cm.matrix, [[1, 1], [0, 2]])
    assert cm.matrix.dtype == np.int64
    s = cm.compute()
    np.testing.assert_allclose(s["IoU"], [1 / 2, 2 / 3])
    np.testing.assert_allclose(s["Dice"], [2 / 3, 4 / 5])
    np.testing.assert_allclose(s["Acc"], [1 / 2, 1])
    assert s["mIoU"] == pytest.approx(7 / 12)
    assert s["mDice"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert s["mAcc"] == pytest.approx(3 / 4)
    assert s["aAcc"] == pytest.approx(3 / 4)


def test_confusion_matrix_matches_pixel_loop_over_batches(device):
    rng = np.random.default_rng(3)
    C = 5
    cm = ConfusionMatrix(C)
    preds, targets = [], []
    for _ in range(3):
        t = rng.integers(0, C, size=(2, 7, 9))
        t[rng.random(t.shape) < 0.15] = 255
        p = np.where(rng.random(t.shape) < 0.6, np.where(t == 255, 0, t), rng.integers(0, C, t.shape))
        cm.update(ms.tensor(p, device=device), ms.tensor(t, device=device))
        preds.append(p), targets.append(t)
    iou_k, dice_k, acc_k, a_acc = pixel_loop_scores(np.stack(preds), np.stack(targets), C)
    s = cm.compute()
    np.testing.assert_allclose(s["IoU"], iou_k, rtol=1e-12)
    np.testing.assert_allclose(s["Dice"], dice_k, rtol=1e-12)
    np.testing.assert_allclose(s["Acc"], acc_k, rtol=1e-12)
    assert s["aAcc"] == pytest.approx(a_acc)
    assert s["mIoU"] == pytest.approx(np.nanmean(iou_k))
    assert cm.matrix.sum() == sum(int((t != 255).sum()) for t in targets)


def test_nan_for_absent_class_and_nan_skipping_means():
    cm = ConfusionMatrix(4)
    target = np.array([0, 0, 1, 1])
    pred = np.array([0, 3, 1, 1])     # class 2 appears nowhere; class 3 only predicted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cm.update(pred, target)
        s = cm.compute()
    assert np.isnan(s["IoU"][2]) and np.isnan(s["Dice"][2]) and np.isnan(s["Acc"][2])
    assert s["IoU"][3] == 0 and s["Dice"][3] == 0 and np.isnan(s["Acc"][3])
    assert s["mIoU"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert s["mAcc"] == pytest.approx((1 / 2 + 1) / 2)


def test_empty_matrix_gives_nan_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = ConfusionMatrix(3).compute()
    assert np.isnan(s["mIoU"]) and np.isnan(s["aAcc"]) and np.all(np.isnan(s["IoU"]))


def test_ignore_index_pixels_are_not_counted_whatever_the_prediction():
    cm = ConfusionMatrix(3, ignore_index=255)
    target = np.array([[0, 255], [2, 255]])
    pred = np.array([[0, 7], [1, -4]])        # garbage under the ignored pixels is fine
    cm.update(pred, target)
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[0, 0] = expected[2, 1] = 1
    np.testing.assert_array_equal(cm.matrix, expected)


def test_logits_argmax_over_channels(device):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=(2, 4, 5))
    logits = rng.normal(size=(2, 3, 4, 5)) + 10 * np.moveaxis(np.eye(3)[labels], -1, 1)
    target = rng.integers(0, 3, size=(2, 4, 5))
    from_logits = ConfusionMatrix(3).update(ms.tensor(logits, device=device), ms.tensor(target, device=device))
    from_labels = ConfusionMatrix(3).update(labels, target)
    np.testing.assert_array_equal(from_logits.matrix, from_labels.matrix)


def test_dataset_accumulation_differs_from_mean_of_images():
    # image 1: a 100-pixel object found exactly; image 2: a 1-pixel object missed.
    t1 = np.zeros((1, 20, 20), dtype=int)
    t1[0, :5, :] = 1
    t2 = np.zeros((1, 20, 20), dtype=int)
    t2[0, 0, 0] = 1
    cm = ConfusionMatrix(2)
    cm.update(t1.copy(), t1)
    cm.update(np.zeros_like(t2), t2)
    per_image_class1 = [1.0, 0.0]                 # mean 0.5
    assert cm.compute()["IoU"][1] == pytest.approx(100 / 101)
    assert np.mean(per_image_class1) == pytest.approx(0.5)
    assert cm.compute()["IoU"][0] == pytest.approx((300 + 399) / (300 + 400))


def test_reset_and_table():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1]))
    text = cm.table(["road", "car"])
    lines = text.splitlines()
    assert lines[0].split() == ["Class", "IoU", "Dice", "Acc"]
    assert next(l for l in lines if l.startswith("road")).split() == ["road", "50.00", "66.67", "50.00"]
    assert next(l for l in lines if l.startswith("car")).split() == ["car", "66.67", "80.00", "100.00"]
    assert next(l for l in lines if l.startswith("mean")).split() == ["mean", "58.33", "73.33", "75.00"]
    assert next(l for l in lines if l.startswith("aAcc")).split() == ["aAcc", "75.00"]
    assert "0 " in ConfusionMatrix(2).table()
    cm.reset()
    assert cm.matrix.sum() == 0 and cm.matrix.shape == (2, 2)


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        ConfusionMatrix(0)
    with pytest.raises(TypeError, match="ignore_index must be an int or None"):
        ConfusionMatrix(3, ignore_index=1.5)
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"target has labels \[3, 7\] outside \[0, 3\) or ignore_index=255"):
        cm.update(np.array([0, 1, 2, 0]), np.array([3, 7, 1, 255]))
    with pytest.raises(ValueError, match=r"pred has labels \[-1\] outside \[0, 3\)"):
        cm.update(np.array([-1, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"logits must have shape \(N, 3, \*target.shape\[1:\]\).*\(2, 4, 5, 5\)"):
        cm.update(np.zeros((2, 4, 5, 5)), np.zeros((2, 5, 5), dtype=int))
    with pytest.raises(ValueError, match=r"pred must be labels with the shape of target \(2, 5, 5\)"):
        cm.update(np.zeros((2, 5, 4), dtype=int), np.zeros((2, 5, 5), dtype=int))
    with pytest.raises(TypeError, match="target must hold integer labels, got dtype float64"):
        cm.update(np.zeros((2, 2), dtype=int), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="pred must hold integer labels"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 2), dtype=int))
    with pytest.raises(ValueError, match="expected 3 names, got 2"):
        cm.table(["a", "b"])
    assert cm.matrix.sum() == 0          # failed updates counted nothing
