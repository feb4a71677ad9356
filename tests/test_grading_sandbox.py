"""Integrity and confinement of the grader: each cheat a student tried scores 0 with a non-zero
exit code, and each limit (memory, output, file size, time, detached processes, working
folder, environment) holds. The student's file always runs in its own process."""
import dataclasses
import json
import os
import pathlib
import textwrap
import time

from grading_answers import ANSWERS, EXERCISES, SYLLABUS_Q1, SYLLABUS_Q2, grade, write
from minisegnet import grading
from minisegnet.grading import sandbox

CHEATS = {
    "the library's iou": ("q2_iou", "import minisegnet.metrics\nIoU = minisegnet.metrics.iou(a, b)"),
    "the library's iou imported under another name": (
        "q2_iou", "from minisegnet.metrics import iou as library_iou\nIoU = library_iou(a, b)"),
    "the library's conv2d": ("q5_conv2d_im2col", """
        import minisegnet as ms
        out = ms.functional.conv2d(ms.tensor(x), ms.tensor(weight),
                                   None if bias is None else ms.tensor(bias), stride=stride,
                                   padding=padding, dilation=dilation).numpy()
     """),
    "the library's conv2d through nn.Conv2d": ("q5_conv2d_im2col", """
        import minisegnet as ms
        layer = ms.nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2:], stride=stride,
                             padding=padding, dilation=dilation, bias=bias is not None)
        layer.to("cpu", dtype=ms.float64)
        layer.load_state_dict({"weight": weight, **({"bias": bias} if bias is not None else {})})
        out = layer(ms.tensor(x, dtype=ms.float64)).detach().numpy()
     """),
    "the library's ASPP head helper on the student's modules": (
        "q1_aspp_forward", "from minisegnet.models import heads\noutput = heads.ASPPHead._aspp_features(self, x)"),
    "the library's interpolate": ("q6_bilinear", """
        import minisegnet as ms
        out = ms.functional.interpolate(ms.tensor(x), size=size, mode='bilinear',
                                        align_corners=align_corners).numpy()
     """),
    "numpy's comparison functions replaced": ("q2_iou", """
        np.allclose = lambda *args, **kwargs: True
        np.isclose = lambda *args, **kwargs: True
        np.testing.assert_allclose = lambda *args, **kwargs: None
        IoU = 0.0
     """),
    "the grader's helpers replaced": ("q2_iou", """
        try:
            import minisegnet.grading.compare as judge
            judge.compare = lambda *args, **kwargs: None
        except ImportError:
            pass
        IoU = 0.0
     """),
    "forged records, a fake report and os._exit(0)": ("q2_iou", """
        import json, os, struct, sys
        fake = json.dumps({"op": "result", "id": 1, "value": 1.0, "nonce": "0" * 32}).encode()
        for fd in range(3, 64):
            try:
                os.write(fd, struct.pack(">I", len(fake)) + fake)
            except OSError:
                pass
        for name in sys.argv:
            try:
                open(name, "a").write('{"check": "random", "passed": true}\\n')
            except OSError:
                pass
        print("q2_iou   5/5  all checks passed")
        print("total    5/5  all questions complete")
        os._exit(0)
     """),
    "the expected value read from the caller's frames": ("q2_iou", """
        import sys
        found, frame = [], sys._getframe(1)
        while frame is not None:
            found += [v for v in frame.f_locals.values() if isinstance(v, float) and 0 < v < 1]
            frame = frame.f_back
        IoU = found[0] if found else 0.5
     """),
    "the library called only when the grader is detected": ("q2_iou", """
        import sys
        if __name__ != "__main__" or any("grad" in m for m in sys.modules):
            from minisegnet import metrics
            IoU = metrics.iou(a, b)
        else:
            IoU = 0.0
     """),
}


def test_every_cheat_scores_zero_and_the_exit_code_says_so(tmp_path, capsys):
    for i, (what, (name, answer)) in enumerate(CHEATS.items()):
        folder = tmp_path / str(i)
        folder.mkdir()
        path = write(folder, name, answer)
        assert grading.main([str(path), "--json", str(folder / "g.json"), "--timeout", "10"]) == 1, what
        record = json.loads((folder / "g.json").read_text())
        assert record["total"] == 0 and record["max_total"] > 0, (what, record["questions"][0]["message"])
    out = capsys.readouterr().out
    assert "all questions complete" not in out and "5/5" not in out


LIBRARY_CHEATS = ["the library's iou", "the library's iou imported under another name",
                  "the library's conv2d", "the library's conv2d through nn.Conv2d",
                  "the library's ASPP head helper on the student's modules", "the library's interpolate",
                  "the library called only when the grader is detected"]


def test_the_library_cheats_are_real_they_work_when_the_answer_key_is_on(tmp_path):
    # the same files with nothing switched off: full marks, so the switch is what stops them
    for i, what in enumerate(LIBRARY_CHEATS):
        name, answer = CHEATS[what]
        folder = tmp_path / str(i)
        folder.mkdir()
        unguarded = dataclasses.replace(grading.QUESTIONS[name], answer_key=())
        result = grading.grade_file(write(folder, name, answer), unguarded)
        assert result.complete, (what, result.message)


def test_the_answer_key_is_off_with_a_clear_message(tmp_path):
    result = grade(write(tmp_path, "q2_iou", CHEATS["the library's iou"][1]))
    assert result.message.endswith("the library's `iou` is the answer key for q2_iou and is off while grading "
                                   "Hint: " + grading.QUESTIONS["q2_iou"].checks[0].hint)
    result = grade(write(tmp_path, "q1_aspp_forward", CHEATS[
        "the library's ASPP head helper on the student's modules"][1]))
    assert "`ASPPHead._aspp_features` is the answer key for q1_aspp_forward" in result.message
    result = grade(write(tmp_path, "q5_conv2d_im2col", CHEATS["the library's conv2d"][1]))
    assert "`conv2d` is the answer key for q5_conv2d_im2col" in result.message


def test_building_blocks_the_exercise_names_stay_available(tmp_path):
    # resize, ms.cat and ConvModule (whose conv2d is the answer key of Q5, not of Q1)
    assert grade(write(tmp_path, "q1_aspp_forward", SYLLABUS_Q1)).complete


def test_forged_frames_void_the_question_even_with_right_values(tmp_path):
    answer = SYLLABUS_Q2 + """
import json, os, struct
fake = json.dumps({"op": "result", "id": 99, "value": 1.0, "nonce": "f" * 32}).encode()
for fd in range(3, 64):
    try:
        os.write(fd, struct.pack(">I", len(fake)) + fake)
    except OSError:
        pass
"""
    result = grade(write(tmp_path, "q2_iou", answer))
    assert result.points == 0 and any("forged frame" in n for n in result.notes)


def test_memory_limit_stops_a_6_gib_allocation(tmp_path):
    answer = "big = np.ones(6 << 27)\n" + SYLLABUS_Q2          # 6 GiB of float64
    result = grade(write(tmp_path, "q2_iou", answer))
    assert result.points == 0
    assert "over the memory limit (2 GiB)" in result.message and "memory" in result.message
    result = grade(write(tmp_path, "q2_iou", "big = np.ones(300 << 17)\n" + SYLLABUS_Q2),
                   memory=1 << 30)                         # 300 MiB fits in 1 GiB
    assert result.complete, result.message


def test_output_flood_is_capped_and_dropped(tmp_path):
    path = write(tmp_path, "q2_iou", "for _ in range(2000):\n    print('y' * 10000)\n" + SYLLABUS_Q2)
    assert grade(path, timeout=60).complete          # 100 MB printed, still graded
    q = grading.QUESTIONS["q2_iou"]
    with sandbox.Sandbox(q.name, path, q.entries, q.answer_key, timeout=60) as box:
        assert box.start()["op"] == "loaded"
        student = sandbox.RemoteStudent(box)
        assert float(student.iou(EXAMPLE_A, EXAMPLE_B)) == 0.5
        assert len(box.output["stdout"]) == sandbox.OUTPUT_CAP
        assert box.dropped["stdout"] >= 20_000_000 - sandbox.OUTPUT_CAP
        assert "more dropped" in box.captured("stdout")


def test_file_size_limit(tmp_path):
    answer = "open('big.bin', 'wb').write(b'x' * (32 << 20))\n" + SYLLABUS_Q2
    result = grade(write(tmp_path, "q2_iou", answer))
    assert result.points == 0 and "File too large" in result.message


def test_time_limit_kills_an_endless_loop_and_earlier_checks_count(tmp_path):
    answer = SYLLABUS_Q2 + "if a.dtype == bool:\n    while True:\n        pass\n"
    result = grade(write(tmp_path, "q2_iou", answer), timeout=3)
    assert result.passed == ["random 10x10 masks, as in the quiz", "identical, disjoint and one-empty masks",
                             "one mask inside the other (both orders)"]
    assert [c.message for c in result.failures] == ["time limit exceeded (3 s): is there an endless loop?"] * 2


def _alive(pid):
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_no_process_outlives_its_question_even_after_setsid(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    sleeper = f"import os, time; open(r'{pids}/' + str(os.getpid()), 'w').close(); time.sleep(60)"
    answer = textwrap.dedent(f"""
        import os, subprocess, sys, time
        if not getattr(sys, "spawned", False):      # once, on the first call
            sys.spawned = True
            # a child in a new session, and a grandchild that detaches (setsid) and is orphaned
            subprocess.Popen([sys.executable, "-c", {sleeper!r}], start_new_session=True)
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv(sys.executable, [sys.executable, "-c", {sleeper!r}])
                os._exit(0)
            os.system("sleep 60 &")
            while len(os.listdir({str(pids)!r})) < 2:
                time.sleep(0.05)
    """) + SYLLABUS_Q2
    result = grade(write(tmp_path, "q2_iou", answer), timeout=20)
    assert result.complete, result.message
    started = [int(p.name) for p in pids.iterdir()]
    assert len(started) == 2
    time.sleep(0.2)
    assert not [p for p in started if _alive(p)]
    assert not [p for p in started if os.path.exists(f"/proc/{p}")]       # and reaped


def test_empty_working_folder_home_there_and_a_scrubbed_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTOR_TOKEN", "secret")
    answer = textwrap.dedent("""
        import os
        assert os.listdir(".") == [], os.listdir(".")
        assert os.environ["HOME"] == os.getcwd() != os.path.dirname(__file__)
        assert "INSTRUCTOR_TOKEN" not in os.environ and "MINISEGNET_GRADE_SEED" not in os.environ
    """) + SYLLABUS_Q2
    monkeypatch.setenv("MINISEGNET_GRADE_SEED", "42")
    result = grade(write(tmp_path, "q2_iou", answer))
    assert result.complete, result.message


def test_the_runner_holds_no_checks_references_or_comparison():
    import ast
    tree = ast.parse(pathlib.Path(grading.runner.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the runner runs as a script: no relative imports"
            imported.add(node.module)
    assert not [m for m in imported if m.startswith("minisegnet.grading")]
    assert {m.split(".")[0] for m in imported} <= {"base64", "builtins", "fnmatch", "importlib", "json",
                                                   "os", "pkgutil", "struct", "sys", "traceback",
                                                   "numpy", "minisegnet", "resource", "ctypes"}


EXAMPLE_A = __import__("numpy").array([[1, 1], [0, 0]])
EXAMPLE_B = __import__("numpy").array([[1, 0], [0, 0]])


def test_a_detached_process_whose_runner_exits_is_reaped_by_the_grader(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    sleeper = f"import os, time; open(r'{pids}/' + str(os.getpid()), 'w').close(); time.sleep(60)"
    path = write(tmp_path, "q2_iou", SYLLABUS_Q2)
    path.write_text(textwrap.dedent(f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {sleeper!r}], start_new_session=True)
        while not os.listdir({str(pids)!r}):
            time.sleep(0.05)
        os._exit(0)                  # the runner dies; its detached child is re-parented to us
    """) + path.read_text())
    result = grade(path, timeout=20)
    assert result.points == 0 and "the grading process stopped (exit code 0)" in result.message
    (pid,) = [int(p.name) for p in pids.iterdir()]
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pid}")        # killed and reaped, not left a zombie
