"""The autograder's questions: untouched stubs score 0, correct answers (the syllabus's own
among them) score full marks at several seeds, plausible wrong answers are caught by a named
check with a hint that names the mistake, and every failed check is listed.

Every grading runs the student's file in its own sandboxed process (see
tests/test_grading_sandbox.py for cheats and limits, tests/test_grading_class.py for class
mode and the command line).
"""
import importlib.util

import numpy as np
import pytest

from grading_answers import ANSWERS, EXERCISES, N_QUESTIONS, SYLLABUS_Q1, SYLLABUS_Q2, grade, write
from minisegnet import grading
from minisegnet.grading import region
from minisegnet.models import heads


def load(path):
    spec = importlib.util.spec_from_file_location("stub_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------- the stubs
def test_every_question_has_a_stub_with_one_marked_region():
    assert len(grading.QUESTIONS) >= N_QUESTIONS
    for name, q in grading.QUESTIONS.items():
        assert q.stub_path == EXERCISES / f"{name}.py"
        text = q.stub_path.read_text()
        assert text.count(grading.BEGIN_MARK) == 1 and text.count(grading.END_MARK) == 1, name
        region_text = text.split(grading.BEGIN_MARK)[1].split(grading.END_MARK)[0]
        assert f'raise NotImplementedError("{name}' in region_text, name
        assert q.answer_key, f"{name} lists no answer key"
    assert (EXERCISES / "README.md").is_file()


def test_q1_stub_keeps_the_syllabus_skeleton():
    student = load(EXERCISES / "q1_aspp_forward.py")
    head = student.ASPPHead(in_channels=8, channels=4, num_classes=3, align_corners=True)
    assert isinstance(head, heads.BaseDecodeHead) and head.align_corners is True
    for attribute in ("image_pool", "aspp_modules", "bottleneck", "cls_seg", "_transform_inputs"):
        assert hasattr(head, attribute), attribute
    assert list(head.state_dict()) == list(heads.ASPPHead(in_channels=8, channels=4, num_classes=3).state_dict())
    text = (EXERCISES / "q1_aspp_forward.py").read_text()
    before, after = text.split("raise NotImplementedError")
    assert before.rstrip().splitlines()[-2].strip() == "x = self._transform_inputs(inputs)"
    assert after.splitlines()[2].strip() == "output = self.cls_seg(output)"


def test_untouched_stubs_score_zero_with_not_implemented():
    results, problems = grading.grade([EXERCISES])
    assert not problems
    assert [r.name for r in results] == list(grading.QUESTIONS)
    for r in results:
        assert r.points == 0 and r.max_points >= 4, r
        assert r.message.startswith("not implemented"), r.message
        assert r.notes == []                     # the stubs themselves: nothing changed


# ---------------------------------------------------------------------- correct answers
@pytest.mark.parametrize("name", list(ANSWERS))
def test_correct_answer_scores_full_marks_at_several_seeds(tmp_path, name):
    path = write(tmp_path, name, ANSWERS[name])
    for seed in (1, "a secret passphrase"):      # other random inputs: still full marks
        result = grade(path, seed=seed)
        assert result.complete, result.message
        assert result.points == result.max_points == len(grading.QUESTIONS[name].checks)
        assert result.message == "all checks passed" and result.notes == []


def test_q1_alternative_answer_with_the_libraries_helpers(tmp_path):
    answer = """
        pooled = resize(self.image_pool(x), x.shape[2:], align_corners=self.align_corners)
        output = self.bottleneck(ms.functional.cat([pooled] + list(self.aspp_modules(x)), 1))
    """
    assert grade(write(tmp_path, "q1_aspp_forward", answer)).complete


# ---------------------------------------------------------------------- wrong answers
WRONG = [
    ("q1_aspp_forward", """
        outs = list(self.aspp_modules(x))
        outs.append(resize(self.image_pool(x), size=x.size()[2:], mode='bilinear',
                           align_corners=self.align_corners))
        output = self.bottleneck(ms.cat(outs, dim=1))
     """, "eval mode, one 8x8 feature map", "ASPP branches first"),
    ("q1_aspp_forward", """
        output = self.bottleneck(ms.cat(self.aspp_modules(x), dim=1))
     """, "eval mode, one 8x8 feature map", "your code raised"),
    ("q1_aspp_forward", SYLLABUS_Q1 + "output = ms.tensor(output.numpy())\n",
     "gradients reach the input and every branch", "no gradient reached the input"),
    ("q2_iou", "IoU = (a & b).sum() / (a.sum() + b.sum())",
     "random 10x10 masks, as in the quiz", "|A| + |B|"),
    ("q2_iou", "IoU = (a * b).sum() / (a + b).sum()",
     "random 10x10 masks, as in the quiz", "|A| + |B|"),
    ("q2_iou", "IoU = (a & b).sum() / a.sum()",
     "random 10x10 masks, as in the quiz", "first mask's area"),
    ("q2_iou", "IoU = (a & b).sum() // (a | b).sum()",
     "random 10x10 masks, as in the quiz", "integer division"),
    ("q1_aspp_forward", """
        outs = [resize(self.image_pool(x), size=x.size()[2:], mode='bilinear',
                       align_corners=self.align_corners)]
        outs.extend(list(self.aspp_modules(x))[::-1])
        output = self.bottleneck(ms.cat(outs, dim=1))
     """, "eval mode, one 8x8 feature map", "reverse order of `dilations`"),
    ("q5_conv2d_im2col", ANSWERS["q5_conv2d_im2col"].replace(
        "cols[:, :, u, v] =", "cols[:, :, v, u] =").replace(
        "cols = np.empty((n, c, kh, kw, oh, ow))", "cols = np.empty((n, c, kw, kh, oh, ow))"),
     "3x3 kernel, no padding", "(kW, kH) order"),
    ("q3_dice", "Dice = (a & b).sum() / (a | b).sum()",
     "random 10x10 masks, as in the quiz", "IoU formula"),
    ("q4_conv_output_size", """
        out_size, receptive_field = in_size, 1
        for k, s, p, d in layers:
            out_size = (out_size + 2 * p - d * (k - 1) - 1) // s + 1
            receptive_field += d * (k - 1)
     """, "a stack with strides (a ResNet-like stem)", "ignoring the strides"),
    ("q4_conv_output_size", """
        out_size, receptive_field, jump = in_size, 1, 1
        for k, s, p, d in layers:
            out_size = -(-(out_size + 2 * p - d * (k - 1) - 1) // s) + 1
            receptive_field += d * (k - 1) * jump
            jump *= s
     """, "strided convolutions on odd and even sizes", "rounding up"),
    ("q5_conv2d_im2col", ANSWERS["q5_conv2d_im2col"].replace(
        "weight.reshape(o, -1)", "weight[:, :, ::-1, ::-1].reshape(o, -1)"),
     "3x3 kernel, no padding", "kernel flipped"),
    ("q6_bilinear", ANSWERS["q6_bilinear"].replace("if align_corners:", "if not align_corners:"),
     "upsampling x2, align_corners=False", "align_corners=True"),
    ("q7_adaptive_bins", "bins = [(i * in_size // out_size, (i + 1) * in_size // out_size) "
                         "for i in range(out_size)]",
     "bins that overlap (7 -> 3, 10 -> 4, 5 -> 2)", "off by one"),
    ("q8_pyramid_pooling", ANSWERS["q8_pyramid_pooling"].replace(
        "align_corners=self.align_corners", "align_corners=False"),
     "align_corners=True", "align_corners flipped"),
    ("q8_pyramid_pooling", ANSWERS["q8_pyramid_pooling"].replace(
        "ms.cat(branches, dim=1)", "ms.cat(branches[1:] + branches[:1], dim=1)"),
     "default bins (1, 2, 3, 6), eval mode", "input last"),
    ("q9_cross_entropy", """
        z = logits - logits.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        safe = np.clip(target, 0, logits.shape[1] - 1)
        loss = -np.take_along_axis(log_p, safe[:, None], axis=1).mean()
     """, "pixels labelled 255 are ignored", ""),
    ("q9_cross_entropy", ANSWERS["q9_cross_entropy"].replace("target != ignore_index", "target != 255"),
     "another ignore_index (-1)", ""),
    ("q9_cross_entropy", """
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        counted = target != ignore_index
        picked = np.take_along_axis(p, np.where(counted, target, 0)[:, None], axis=1)[:, 0]
        loss = -np.log(picked[counted]).mean()
     """, "large logits (numerical stability)", "nan or inf"),
    ("q12_bilinear_backward", ANSWERS["q12_bilinear_backward"].replace(
        "rows = axis_matrix(in_size[0], grad_out.shape[2])", "rows = axis_matrix(grad_out.shape[2], in_size[0])").replace(
        "cols = axis_matrix(in_size[1], grad_out.shape[3])", "cols = axis_matrix(grad_out.shape[3], in_size[1])").replace(
        '"oh,ncop,pw->nchw"', '"ho,ncop,wp->nchw"'),
     "upsampling x2 (every input pixel feeds several outputs)", "the forward again, not its transpose"),
    ("q12_bilinear_backward", ANSWERS["q12_bilinear_backward"].replace(
        "src = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)",
        "src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)"),
     "upsampling x2 (every input pixel feeds several outputs)", "align_corners=True"),
    ("q10_transposed_conv", ANSWERS["q10_transposed_conv"].replace(
        "padding:full.shape[2] - padding, padding:full.shape[3] - padding", ":, :"),
     "stride 2, kernel 4, padding 1 (FCN's x2 upsampling)", "expected shape"),
]


@pytest.mark.parametrize("name, answer, failed_check, diagnosis", WRONG,
                         ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG)])
def test_plausible_wrong_answer_is_caught_by_a_named_check(tmp_path, name, answer, failed_check,
                                                          diagnosis):
    result = grade(write(tmp_path, name, answer))
    assert not result.complete and result.points < result.max_points
    assert result.failed == failed_check, result.message
    assert result.message.startswith(f"check '{failed_check}':")
    assert diagnosis in result.message
    assert "Hint:" in result.message
    hint = next(c.hint for c in grading.QUESTIONS[name].checks if c.name == failed_check)
    assert hint in result.message


def test_partial_credit_counts_the_checks_passed(tmp_path):
    answer = ANSWERS["q8_pyramid_pooling"].replace("align_corners=self.align_corners",
                                                   "align_corners=False")
    result = grade(write(tmp_path, "q8_pyramid_pooling", answer))
    assert result.points == result.max_points - 1
    assert "align_corners=True" not in result.passed and len(result.passed) == result.points


def test_every_failed_check_is_listed_in_feedback_and_json(tmp_path):
    # integer division: right only where the answer is exactly 0 or 1
    result = grade(write(tmp_path, "q2_iou", "IoU = (a & b).sum() // (a | b).sum()"))
    failed = [c.name for c in result.failures]
    assert failed == ["random 10x10 masks, as in the quiz", "one mask inside the other (both orders)",
                      "boolean masks", "masks of other shapes (1-D, 3-D, odd sizes)"]
    assert result.points == 1 and result.passed == ["identical, disjoint and one-empty masks"]
    text = grading.feedback_text([result])
    assert text.count("FAILED") == 4 and text.count("Hint:") == 4
    record = grading.to_json([result])["questions"][0]
    assert [c["name"] for c in record["checks"] if not c["passed"]] == failed
    assert all(c["message"] and c["hint"] for c in record["checks"] if not c["passed"])


def test_q2_extremes_and_nesting_catch_area_of_a_and_floor_division(tmp_path):
    for answer, diagnosis in (("IoU = (a & b).sum() / a.sum()", "first mask's area"),
                              ("IoU = (a & b).sum() // (a | b).sum()", "integer division")):
        result = grade(write(tmp_path, "q2_iou", answer))
        nested = next(c for c in result.checks if c.name.startswith("one mask inside"))
        assert not nested.passed and diagnosis in nested.message, nested
    result = grade(write(tmp_path, "q2_iou", "IoU = (a & b).sum() / a.sum()"))
    assert not next(c for c in result.checks if c.name.startswith("identical")).passed


def test_q5_non_square_kernels_catch_taps_in_the_wrong_order(tmp_path):
    # taps gathered (kW, kH): invisible with 1x3 and 3x1 kernels, caught by 2x3 and 3x2 with a hint
    answer = ANSWERS["q5_conv2d_im2col"].replace("cols[:, :, u, v] =", "cols[:, :, v, u] =").replace(
        "cols = np.empty((n, c, kh, kw, oh, ow))", "cols = np.empty((n, c, kw, kh, oh, ow))")
    result = grade(write(tmp_path, "q5_conv2d_im2col", answer))
    nonsquare = next(c for c in result.checks if c.name == "non-square kernels (2x3 and 3x2)")
    assert not nonsquare.passed and "(kW, kH) order" in nonsquare.message
    assert "weight.reshape(C_out, -1)" in nonsquare.hint


def test_q1_align_corners_check_is_named_for_what_it_checks():
    names = [c.name for c in grading.QUESTIONS["q1_aspp_forward"].checks]
    assert not any("align_corners" in n for n in names)


# ---------------------------------------------------------------------- the region
def test_changes_outside_the_region_are_named_and_cost_the_question_with_strict(tmp_path):
    path = write(tmp_path, "q2_iou", SYLLABUS_Q2)
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("def iou"))
    lines[at:at] = ["import minisegnet", "HELPER = 1"]
    path.write_text("\n".join(lines) + "\n")
    result = grade(path)
    assert result.complete and result.notes == [f"lines {at + 1}-{at + 2} changed outside the YOUR CODE region"]
    strict = grade(path, strict=True)
    assert strict.points == 0 and not strict.complete
    assert "--strict" in strict.message and f"lines {at + 1}-{at + 2}" in strict.message


def test_region_diff_by_hand():
    stub = "a\nb\n# ---- YOUR CODE BEGINS ----\nx\n# ---- YOUR CODE ENDS ----\nc\nd\n"
    same = stub.replace("x\n", "lots\nof\ncode\n")
    assert region.changes_outside_region(same, stub) == []
    assert region.changes_outside_region(same.replace("\nd\n", "\nD\n"), stub) == [
        "line 9 changed outside the YOUR CODE region"]
    assert region.changes_outside_region(same.replace("b\n", ""), stub) == [
        "1 line of the stub removed outside the YOUR CODE region"]
    assert region.changes_outside_region("a\nb\n", stub) == ["the YOUR CODE markers were removed or duplicated"]


# ---------------------------------------------------------------------- robustness
def test_printing_answer_still_scores_and_does_not_garble_the_report(tmp_path, capsys):
    path = write(tmp_path, "q2_iou", 'print("debug!", a.shape)\n' + SYLLABUS_Q2)
    path.write_text('print("top-level noise")\n' + path.read_text())
    result = grade(path)
    assert result.complete
    grading.report([result])
    out = capsys.readouterr()
    assert "noise" not in out.out + out.err and "debug!" not in out.out + out.err
    assert out.out.splitlines()[0].startswith("q2_iou") and "5/5" in out.out


def test_raising_answer_costs_only_its_question(tmp_path):
    write(tmp_path, "q2_iou", "IoU = 1 / 0")
    write(tmp_path, "q3_dice", ANSWERS["q3_dice"])
    results, problems = grading.grade([tmp_path], questions={n: grading.QUESTIONS[n]
                                                             for n in ("q2_iou", "q3_dice", "q7_adaptive_bins")})
    by_name = {r.name: r for r in results}
    assert by_name["q2_iou"].points == 0
    assert "your code raised ZeroDivisionError: division by zero (at q2_iou.py line" in by_name["q2_iou"].message
    assert by_name["q3_dice"].complete
    assert by_name["q7_adaptive_bins"].points == 0
    assert by_name["q7_adaptive_bins"].message.startswith("file not found")


def test_syntax_error_and_missing_names_are_reported(tmp_path):
    bad = write(tmp_path, "q2_iou", "IoU = (a & b).sum( /")
    result = grade(bad)
    assert result.points == 0 and "could not load q2_iou.py: SyntaxError" in result.message
    bad.write_text("import numpy as np\n\ndef jaccard(a, b):\n    return 0\n")
    assert "defines no iou" in grade(bad).message


def test_wrong_kinds_of_results_are_explained(tmp_path):
    result = grade(write(tmp_path, "q2_iou", "IoU = object()"))
    assert "expected a single number, got object" in result.message
    result = grade(write(tmp_path, "q2_iou", "IoU = None"))
    assert "expected a single number" in result.message
    result = grade(write(tmp_path, "q2_iou", "IoU = np.float32(((a & b).sum() / (a | b).sum()))"))
    assert result.complete, result.message


def test_check_for_notebooks(tmp_path, capsys):
    good = write(tmp_path, "q7_adaptive_bins", ANSWERS["q7_adaptive_bins"])
    assert grading.check("q7", path=tmp_path) is True
    assert capsys.readouterr().out.split()[:4] == ["q7_adaptive_bins", "5/5", "all", "checks"]
    assert grading.check("q7_adaptive_bins", path=EXERCISES / "q7_adaptive_bins.py") is False
    assert "not implemented" in capsys.readouterr().out
    assert good.exists()
    with pytest.raises(ValueError, match="unknown question 'q99'; known questions: q1_aspp_forward"):
        grading.check("q99")


def test_values_cross_the_channel_unchanged():
    from minisegnet.grading import runner
    values = [np.arange(6, dtype=np.int64).reshape(2, 3), np.float64(2.5), np.array(True),
              np.zeros((0, 4), np.float32), (1, [2.0, None, "s"]), {"k": np.ones(2)}]
    back = runner.decode(runner.encode(values))
    np.testing.assert_array_equal(back[0], values[0])
    assert back[0].dtype == np.int64 and back[1].shape == () and float(back[1]) == 2.5
    assert back[2].dtype == bool and back[3].shape == (0, 4) and back[3].dtype == np.float32
    assert back[4] == (1, [2.0, None, "s"]) and list(back[5]) == ["k"]
    assert isinstance(runner.decode(runner.encode(object())), runner.Unusable)
    with pytest.raises(ValueError, match="refused array dtype"):
        runner.decode({"__nd__": ["object", [1], ""]})
