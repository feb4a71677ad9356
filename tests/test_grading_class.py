"""Class mode end to end on a generated class (complete, partial, syntax error, endless loop,
output flood, missing file, cheat, a renamed file and a stray one), the command line (exit
codes, JSON, `| head -1`), and an instructor's own question from exercises/README.md."""
import argparse
import csv
import json
import os
import re
import subprocess
import sys

from grading_answers import ANSWERS, EXERCISES, ROOT, SYLLABUS_Q2, fill, write
from minisegnet import cli as ms_cli
from minisegnet import grading

WRONG_DICE = "Dice = (a & b).sum() / (a | b).sum()"


def make_class(root):
    """Seven students answering q2_iou and q3_dice."""
    files = {
        "ada": {"q2_iou": SYLLABUS_Q2, "q3_dice": ANSWERS["q3_dice"]},
        "bob": {"q2_iou": SYLLABUS_Q2, "q3_dice": WRONG_DICE},
        "cyd": {"q2_iou": "IoU = (a & b).sum( /", "q3_dice": ANSWERS["q3_dice"]},
        "dee": {"q2_iou": "while True:\n    pass", "q3_dice": ANSWERS["q3_dice"]},
        "eve": {"q2_iou": "for _ in range(300):\n    print('z' * 10000)\n" + SYLLABUS_Q2},
        "fay": {"q2_iou": "from minisegnet.metrics import iou as lib\nIoU = lib(a, b)",
                "q3_dice": "from minisegnet import metrics\nDice = metrics.dice(a, b)"},
        "gus": {},
    }
    for student, answers in files.items():
        folder = root / student
        folder.mkdir(parents=True)
        for name, answer in answers.items():
            write(folder, name, answer)
    (root / "ada" / "q3_dice.py").rename(root / "ada" / "q3_my_dice.py")   # as a course site renames it
    (root / "ada" / "notes.py").write_text("x = 1\n")


def test_class_mode_end_to_end(tmp_path, capsys):
    make_class(tmp_path / "subs")
    out = tmp_path / "grades"
    code = ms_cli.main(["grade", "--class", str(tmp_path / "subs"), "--out", str(out), "--questions",
                        "q2,q3_dice", "--jobs", "2", "--timeout", "3", "--seed", "11"])
    assert code == 0
    rows = list(csv.DictReader((out / "gradebook.csv").open()))
    table = {r["student"]: (int(r["q2_iou"]), int(r["q3_dice"]), int(r["total"]), int(r["max"])) for r in rows}
    assert list(table) == ["ada", "bob", "cyd", "dee", "eve", "fay", "gus"]
    assert table == {"ada": (5, 5, 10, 10), "bob": (5, 1, 6, 10), "cyd": (0, 5, 5, 10),
                     "dee": (0, 5, 5, 10), "eve": (5, 0, 5, 10), "fay": (0, 0, 0, 10),
                     "gus": (0, 0, 0, 10)}
    feedback = {p.stem: p.read_text() for p in (out / "feedback").iterdir()}
    assert sorted(feedback) == list(table)
    assert "files that match no question: notes.py" in feedback["ada"]
    assert "q3_dice: 1/5" in feedback["bob"] and feedback["bob"].count("FAILED") == 4
    assert "IoU formula" in feedback["bob"] and "Hint:" in feedback["bob"]
    assert "SyntaxError" in feedback["cyd"] and "time limit exceeded (3 s)" in feedback["dee"]
    assert "file not found" in feedback["eve"] and "zzzz" not in feedback["eve"]
    assert "is the answer key for q2_iou and is off while grading" in feedback["fay"]
    assert feedback["gus"].count("file not found") == 2
    record = json.loads((out / "results.json").read_text())
    assert [q["name"] for q in record["questions"]] == ["q2_iou", "q3_dice"]
    by_student = {s["student"]: s for s in record["students"]}
    assert by_student["gus"]["max"] == 10 and by_student["gus"]["total"] == 0
    bob_dice = by_student["bob"]["questions"][1]
    assert bob_dice["points"] == 1 and len([c for c in bob_dice["checks"] if not c["passed"]]) == 4
    assert by_student["ada"]["questions"][1]["file"].endswith("q3_my_dice.py")
    summary = capsys.readouterr().out
    assert re.search(r"q2_iou\s+2\.14\s+0\s+3/7", summary), summary
    assert "files that could not be loaded: cyd" in summary


def test_class_mode_refuses_what_it_cannot_grade(tmp_path, capsys):
    assert grading.main(["--class", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert grading.main(["--class", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no student folders" in capsys.readouterr().err
    assert grading.main(["--class", str(tmp_path / "empty")]) == 2
    assert "--class needs --out" in capsys.readouterr().err
    (tmp_path / "empty" / "ada").mkdir()
    assert grading.main([str(tmp_path / "empty")]) == 2           # a class folder without --class
    assert "use --class" in capsys.readouterr().err


def test_main_exit_codes_and_json(tmp_path, capsys):
    good = write(tmp_path, "q2_iou", 'print("debug output")\n' + SYLLABUS_Q2)
    out_json = tmp_path / "grades.json"
    assert grading.main([str(good), "--json", str(out_json)]) == 0
    record = json.loads(out_json.read_text())
    assert record["total"] == record["max_total"] == 5
    (q,) = record["questions"]
    assert q["failed"] is None and len(q["passed"]) == 5 and q["message"] == "all checks passed"
    out = capsys.readouterr().out
    assert "all questions complete" in out and "debug output" not in out
    assert grading.main([str(tmp_path / "nowhere")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert grading.main([str(good), "--json", str(tmp_path / "no" / "dir.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {tmp_path / 'no' / 'dir.json'}: " in err
    assert "No such file or directory" in err and "Traceback" not in err
    notes = tmp_path / "notes.py"
    notes.write_text("x = 1\n")
    assert grading.main([str(notes)]) == 2
    assert "not an exercise file" in capsys.readouterr().err


def test_cli_args_namespace_and_default_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert grading.cli(argparse.Namespace(paths=[], json=None)) == 2      # no exercises/ here
    assert "no such file or folder: exercises" in capsys.readouterr().err
    (tmp_path / "exercises").mkdir()
    (tmp_path / "lectures").mkdir()
    write(tmp_path / "exercises", "q2_iou", SYLLABUS_Q2)
    monkeypatch.chdir(tmp_path / "lectures")
    assert grading.cli(argparse.Namespace(paths=[], json=None, questions="q2,q3")) == 1
    out = capsys.readouterr().out
    assert "q2_iou" in out and "5/5" in out and "file not found" in out and "q4" not in out


def test_grade_into_a_closed_pipe_ends_quietly(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)                       # like `minisegnet grade | head -1` after head exits
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "minisegnet.grading", str(EXERCISES / "q2_iou.py")],
                          stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=120)
    os.close(write_end)
    assert proc.returncode == 1 and proc.stderr == b""


# ---------------------------------------------------------------------- an instructor's question
def readme_blocks(language):
    text = (EXERCISES / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_instructors_question_from_the_readme(tmp_path, capsys):
    blocks = readme_blocks("python")
    first = next(i for i, b in enumerate(blocks) if "QUESTION = Question(" in b)
    question_src, stub_src, answer_src = blocks[first:first + 3]
    questions = tmp_path / "questions"
    (questions / "stubs").mkdir(parents=True)
    (questions / "hw1_softmax.py").write_text(question_src)
    (questions / "stubs" / "hw1_softmax.py").write_text(stub_src)
    student = tmp_path / "student"
    student.mkdir()
    (student / "hw1_softmax.py").write_text(stub_src)
    args = ["--questions-from", str(questions), "--questions", "hw1_softmax,q2"]
    assert grading.main([str(student / "hw1_softmax.py")] + args) == 1
    assert "not implemented yet" in capsys.readouterr().out
    answered = stub_src.replace('    raise NotImplementedError("hw1_softmax: subtract the max, '
                                'exponentiate, normalise")\n', answer_src)
    assert answered != stub_src
    (student / "hw1_softmax.py").write_text(answered)
    assert grading.main([str(student / "hw1_softmax.py"), "--json", str(tmp_path / "g.json")] + args) == 0
    (q,) = json.loads((tmp_path / "g.json").read_text())["questions"]
    assert q["points"] == q["max_points"] >= 3 and q["notes"] == []
    cheat = stub_src.replace('    raise NotImplementedError("hw1_softmax: subtract the max, '
                             'exponentiate, normalise")\n',
                             "    import minisegnet as ms\n    p = ms.functional.softmax(ms.tensor(z), axis).numpy()\n")
    (student / "hw1_softmax.py").write_text(cheat)
    assert grading.main([str(student / "hw1_softmax.py")] + args) == 1
    assert "answer key for hw1_softmax" in capsys.readouterr().out
