"""The autograder: untouched stubs score 0, correct answers (the syllabus's own among them)
score full marks, plausible wrong answers are caught by a named check, and a student's
code that prints, raises, loops forever or does not parse costs only its own question.

Answers are substituted into the marked region of a copy of the stub, the way a student
would fill it in. Most gradings run in-process (fast); the time limit, the command line
and ``check()`` run the isolated subprocess path.
"""
import json
import pathlib
import textwrap

import pytest

from minisegnet import grading
from minisegnet.models import heads

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
N_QUESTIONS = 10

# ---------------------------------------------------------------------- correct answers
SYLLABUS_Q1 = """
aspp_outs = [
    resize(
        self.image_pool(x),
        size=x.size()[2:],
        mode='bilinear',
        align_corners=self.align_corners)
]
aspp_outs.extend(self.aspp_modules(x))
aspp_outs = ms.cat(aspp_outs, dim=1)
output = self.bottleneck(aspp_outs)
"""

SYLLABUS_Q2 = """
intersect = (a & b).sum()
union = (a | b).sum()
IoU = intersect / union
"""

ANSWERS = {
    "q1_aspp_forward": SYLLABUS_Q1,
    "q2_iou": SYLLABUS_Q2,
    "q3_dice": """
        Dice = 2 * np.logical_and(a, b).sum() / (np.count_nonzero(a) + np.count_nonzero(b))
    """,
    "q4_conv_output_size": """
        out_size, receptive_field, jump = in_size, 1, 1
        for k, s, p, d in layers:
            out_size = (out_size + 2 * p - d * (k - 1) - 1) // s + 1
            receptive_field += d * (k - 1) * jump
            jump *= s
    """,
    "q5_conv2d_im2col": """
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        p, s, d = padding, stride, dilation
        xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        oh = (h + 2 * p - d * (kh - 1) - 1) // s + 1
        ow = (w + 2 * p - d * (kw - 1) - 1) // s + 1
        cols = np.empty((n, c, kh, kw, oh, ow))
        for u in range(kh):
            for v in range(kw):
                cols[:, :, u, v] = xpad[:, :, u * d:u * d + s * (oh - 1) + 1:s,
                                        v * d:v * d + s * (ow - 1) + 1:s]
        out = weight.reshape(o, -1) @ cols.reshape(n, c * kh * kw, oh * ow)
        out = out.reshape(n, o, oh, ow)
        if bias is not None:
            out = out + bias[None, :, None, None]
    """,
    "q6_bilinear": """
        def axis_matrix(n_in, n_out):
            i = np.arange(n_out)
            if align_corners:
                src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
            else:
                src = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
            i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
            i1 = np.minimum(i0 + 1, n_in - 1)
            t = src - i0
            m = np.zeros((n_out, n_in))
            np.add.at(m, (i, i0), 1 - t)
            np.add.at(m, (i, i1), t)
            return m
        rows, cols = axis_matrix(x.shape[2], size[0]), axis_matrix(x.shape[3], size[1])
        out = np.einsum("oh,nchw,pw->ncop", rows, x, cols)
    """,
    "q7_adaptive_bins": """
        bins = [(i * in_size // out_size, -(-(i + 1) * in_size // out_size))
                for i in range(out_size)]
    """,
    "q8_pyramid_pooling": """
        branches = [x]
        for pool, conv in zip(self.avgpools, self.convs):
            branches.append(resize(conv(pool(x)), size, mode='bilinear',
                                   align_corners=self.align_corners))
        output = ms.cat(branches, dim=1)
    """,
    "q9_cross_entropy": """
        z = logits - logits.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        counted = target != ignore_index
        safe = np.where(counted, target, 0)
        picked = np.take_along_axis(log_p, safe[:, None], axis=1)[:, 0]
        loss = -picked[counted].mean()
    """,
    "q10_transposed_conv": """
        n, c_in, h, w = x.shape
        _, c_out, kh, kw = weight.shape
        s = stride
        full = np.zeros((n, c_out, (h - 1) * s + kh, (w - 1) * s + kw))
        for u in range(kh):
            for v in range(kw):
                full[:, :, u:u + s * (h - 1) + 1:s, v:v + s * (w - 1) + 1:s] += \\
                    np.einsum("nchw,co->nohw", x, weight[:, :, u, v])
        out = full[:, :, padding:full.shape[2] - padding, padding:full.shape[3] - padding]
    """,
}


def fill(name, answer):
    """The stub's text with the marked region replaced by ``answer`` (indented to match)."""
    lines = (EXERCISES / f"{name}.py").read_text().splitlines()
    begin = next(i for i, line in enumerate(lines) if line.strip() == grading.BEGIN_MARK)
    end = next(i for i, line in enumerate(lines) if line.strip() == grading.END_MARK)
    indent = lines[begin][:len(lines[begin]) - len(lines[begin].lstrip())]
    body = textwrap.indent(textwrap.dedent(answer).strip("\n"), indent).splitlines()
    return "\n".join(lines[:begin + 1] + body + lines[end:]) + "\n"


def write(tmp_path, name, answer):
    path = tmp_path / f"{name}.py"
    path.write_text(fill(name, answer))
    return path


def grade(path, **kwargs):
    kwargs.setdefault("isolate", False)
    return grading.grade_file(path, **kwargs)


# ---------------------------------------------------------------------- the stubs
def test_every_question_has_a_stub_with_one_marked_region():
    assert len(grading.QUESTIONS) >= N_QUESTIONS
    for name in grading.QUESTIONS:
        text = (EXERCISES / f"{name}.py").read_text()
        assert text.count(grading.BEGIN_MARK) == 1 and text.count(grading.END_MARK) == 1, name
        region = text.split(grading.BEGIN_MARK)[1].split(grading.END_MARK)[0]
        assert f'raise NotImplementedError("{name}' in region, name
    assert (EXERCISES / "README.md").is_file()


def test_q1_stub_keeps_the_syllabus_skeleton():
    student = grading._load_student(EXERCISES / "q1_aspp_forward.py")
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
    results, problems = grading.grade([EXERCISES], isolate=False)
    assert not problems
    assert [r.name for r in results] == list(grading.QUESTIONS)
    for r in results:
        assert r.points == 0 and r.max_points >= 4, r
        assert r.message.startswith("not implemented"), r.message


# ---------------------------------------------------------------------- correct answers
@pytest.mark.parametrize("name", list(ANSWERS))
def test_correct_answer_scores_full_marks(tmp_path, name):
    path = write(tmp_path, name, ANSWERS[name])
    for seed in (0, 7):             # other random inputs: still full marks
        result = grade(path, seed=seed)
        assert result.complete, result.message
        assert result.points == result.max_points == len(grading.QUESTIONS[name].checks)
        assert result.message == "all checks passed"


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


# ---------------------------------------------------------------------- robustness
def test_printing_answer_still_scores_and_does_not_garble_the_report(tmp_path, capsys):
    path = write(tmp_path, "q2_iou", 'print("debug!", a.shape)\n' + SYLLABUS_Q2)
    path.write_text('print("top-level noise")\n' + path.read_text())
    result = grade(path)
    assert result.complete
    grading.report([result])
    out = capsys.readouterr()
    assert "noise" not in out.out + out.err and "debug!" not in out.out + out.err
    assert out.out.splitlines()[0].startswith("q2_iou") and "4/4" in out.out


def test_raising_answer_costs_only_its_question(tmp_path):
    write(tmp_path, "q2_iou", "IoU = 1 / 0")
    write(tmp_path, "q3_dice", ANSWERS["q3_dice"])
    results, problems = grading.grade([tmp_path], isolate=False)
    by_name = {r.name: r for r in results}
    assert by_name["q2_iou"].points == 0
    assert "your code raised ZeroDivisionError: division by zero (at q2_iou.py line" in by_name["q2_iou"].message
    assert by_name["q3_dice"].complete
    missing = [r for r in results if r.name not in ("q2_iou", "q3_dice")]
    assert len(missing) == N_QUESTIONS - 2
    assert all(r.points == 0 and r.message.startswith("file not found") for r in missing)


def test_syntax_error_and_missing_names_are_reported(tmp_path):
    bad = write(tmp_path, "q2_iou", "IoU = (a & b).sum( /")
    result = grade(bad)
    assert result.points == 0 and "could not load q2_iou.py: SyntaxError" in result.message
    bad.write_text("import numpy as np\n\ndef jaccard(a, b):\n    return 0\n")
    assert "defines no iou" in grade(bad).message


def test_endless_loop_in_process_hits_the_alarm(tmp_path):
    result = grade(write(tmp_path, "q2_iou", "while True:\n    pass"), timeout=0.5)
    assert result.points == 0 and "time limit exceeded (0.5 s)" in result.message


def test_endless_loop_is_killed_in_the_subprocess_and_earlier_checks_count(tmp_path):
    answer = SYLLABUS_Q2 + "if a.dtype == bool:\n    while True:\n        pass\n"
    result = grade(write(tmp_path, "q2_iou", answer), isolate=True, timeout=6)
    assert result.failed == "boolean masks"
    assert "time limit exceeded (6 s)" in result.message
    assert result.passed == ["random 10x10 masks, as in the quiz", "identical, disjoint and one-empty masks"]
    assert result.points == 2


def test_exiting_the_interpreter_costs_only_that_question(tmp_path):
    result = grade(write(tmp_path, "q2_iou", "import os\nos._exit(3)"), isolate=True)
    assert result.points == 0 and "exit code 3" in result.message


# ---------------------------------------------------------------------- command line, JSON, check()
def test_main_exit_codes_and_json(tmp_path, capsys):
    good = write(tmp_path, "q2_iou", 'print("debug output")\n' + SYLLABUS_Q2)
    out_json = tmp_path / "grades.json"
    assert grading.main([str(good), "--json", str(out_json)]) == 0
    record = json.loads(out_json.read_text())
    assert record["total"] == record["max_total"] == 4
    (q,) = record["questions"]
    assert q["name"] == "q2_iou" and q["points"] == q["max_points"] == 4
    assert q["failed"] is None and len(q["passed"]) == 4 and q["message"] == "all checks passed"
    out = capsys.readouterr().out
    assert "all questions complete" in out and "debug output" not in out

    assert grading.main([str(EXERCISES / "q3_dice.py"), "--json", str(out_json)]) == 1
    (q,) = json.loads(out_json.read_text())["questions"]
    assert q["points"] == 0 and q["failed"] == "random 10x10 masks, as in the quiz"
    assert q["message"].startswith("not implemented")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["q3_dice", "0/4"] and out[-1].split()[:2] == ["total", "0/4"]

    assert grading.main([str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert grading.main([str(good), "--json", str(tmp_path / "no" / "dir.json")]) == 2
    assert "could not write --json file" in capsys.readouterr().err
    notes = tmp_path / "notes.py"
    notes.write_text("x = 1\n")
    assert grading.main([str(notes)]) == 2
    assert "not an exercise file" in capsys.readouterr().err


def test_minisegnet_grade_subcommand(tmp_path, capsys):
    from minisegnet import cli
    good = write(tmp_path, "q3_dice", ANSWERS["q3_dice"])
    assert cli.main(["grade", str(good), "--json", str(tmp_path / "g.json")]) == 0
    assert json.loads((tmp_path / "g.json").read_text())["total"] == 4
    assert cli.main(["grade", str(EXERCISES / "q3_dice.py")]) == 1
    assert "not implemented" in capsys.readouterr().out


def test_cli_args_namespace_and_default_path(tmp_path, monkeypatch, capsys):
    import argparse
    monkeypatch.chdir(tmp_path)
    assert grading.cli(argparse.Namespace(paths=[], json=None)) == 2      # no exercises/ here
    assert "no such file or folder: exercises" in capsys.readouterr().err
    (tmp_path / "exercises").mkdir()
    (tmp_path / "lectures").mkdir()
    write(tmp_path / "exercises", "q2_iou", SYLLABUS_Q2)
    monkeypatch.chdir(tmp_path / "lectures")
    assert grading.cli(argparse.Namespace(paths=[], json=None)) == 1      # found in the folder above
    out = capsys.readouterr().out
    assert "q2_iou" in out and "4/4" in out and "file not found" in out


def test_check_for_notebooks(tmp_path, capsys):
    good = write(tmp_path, "q7_adaptive_bins", ANSWERS["q7_adaptive_bins"])
    assert grading.check("q7", path=tmp_path) is True
    assert capsys.readouterr().out.split()[:4] == ["q7_adaptive_bins", "5/5", "all", "checks"]
    assert grading.check("q7_adaptive_bins", path=EXERCISES / "q7_adaptive_bins.py", isolate=False) is False
    assert "not implemented" in capsys.readouterr().out
    assert good.exists()
    with pytest.raises(ValueError, match="unknown question 'q99'; known questions: q1_aspp_forward"):
        grading.check("q99")
