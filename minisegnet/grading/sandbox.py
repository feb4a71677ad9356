"""The sandbox: one fresh, confined Python process per question, and the channel to it.

:class:`Sandbox` starts :mod:`.runner`'s source in a new interpreter and talks to it over
two pipes this process created (passed with ``pass_fds``): requests go in, raw results come
back in frames tagged with a per-run random nonce. Confinement (Linux; elsewhere what the
platform allows):

* wall time: every request waits until the question's deadline, then the process tree
  is killed;
* memory: ``RLIMIT_AS`` (default 2 GiB), so a huge allocation fails with MemoryError and is
  reported as over the memory limit; file size: ``RLIMIT_FSIZE``; no core files;
* output: standard output and error are read as they come and kept up to a cap (the rest
  is counted and dropped, never held);
* an empty temporary working folder, ``HOME`` and ``TMPDIR`` pointed there, a scrubbed
  environment (no inherited variables but a minimal ``PATH``, one thread for BLAS);
* no process outlives its question: the runner and the grader are child subreapers
  (``prctl(PR_SET_CHILD_SUBREAPER)``), so processes that detach with ``setsid`` are still
  found among the runner's descendants, or re-parented to the grader, and killed.

This stops accidents and casual cheating; it is not a security boundary against a
determined attacker (see the README: grade untrusted code in a container).
"""
import contextlib
import os
import pathlib
import secrets
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

from . import runner

DEFAULT_MEMORY = 2 << 30
DEFAULT_FSIZE = 16 << 20
OUTPUT_CAP = 64 << 10
_RUNNER_SOURCE = pathlib.Path(runner.__file__).read_text(encoding="utf-8")
_PACKAGE_ROOT = str(pathlib.Path(__file__).resolve().parents[2])

_live_runners = set()          # pids of runners in flight (class mode runs several at once)
_registry_lock = threading.Lock()
_first_runner_start = []       # start time of the first runner: older processes are never orphans of ours
_subreaper = []


class Stopped(Exception):
    """The student's process can no longer answer (time limit, crash, broken channel);
    the message says why, in words for the student."""


def format_bytes(n):
    """``2 GiB``, ``512 MiB``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def become_subreaper():
    """Make this process a child subreaper (Linux), once: orphans of the student's
    processes are then re-parented here and can be reaped. Returns whether it worked."""
    if not _subreaper:
        ok = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes
                ok = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                ok = False
        _subreaper.append(ok)
    return _subreaper[0]


def _start_time(pid):
    """When ``pid`` started, in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return int(stat[stat.rfind(")") + 2:].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _proc_table():
    """``{pid: (ppid, sid)}`` of every process, zombies included (Linux ``/proc``; empty elsewhere)."""
    table = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3:
            table[int(name)] = (int(fields[1]), int(fields[3]))
    return table


def descendants(pid, table=None):
    """Every live process below ``pid`` (children, grandchildren, ...)."""
    table = _proc_table() if table is None else table
    children = {}
    for p, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(p)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids, sig):
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def kill_tree(proc):
    """Stop and kill ``proc`` and every process it started, detached ones included, then
    reap the orphans that were re-parented to this process."""
    for _ in range(5):                  # stop first so that nothing forks between scans
        tree = descendants(proc.pid)
        _signal_all([proc.pid] + tree, signal.SIGSTOP)
        if tree == descendants(proc.pid):
            break
    _signal_all(descendants(proc.pid), signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()
    with _registry_lock:
        _live_runners.discard(proc.pid)
    reap_orphans()


def reap_orphans():
    """Kill and reap processes re-parented to this process (we are a subreaper) that came
    from a runner: children of ours, started after the first runner, that are not a live
    runner and left our session (runners start their own; ``setsid`` makes another)."""
    me, my_sid = os.getpid(), os.getsid(0)
    since = _first_runner_start[0] if _first_runner_start else 0
    for _ in range(3):
        with _registry_lock:
            table = _proc_table()
            orphans = [p for p, (ppid, sid) in table.items()
                       if ppid == me and p not in _live_runners and sid != my_sid
                       and (_start_time(p) or 0) >= since]
        if not orphans:
            return
        for p in orphans:               # killed, then reaped (zombies included)
            _signal_all([p] + descendants(p, table), signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(p, 0)


def scrubbed_env(home):
    """The child's whole environment: nothing inherited but where Python finds minisegnet."""
    return {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
            "PYTHONPATH": _PACKAGE_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
            "MINISEGNET_DEVICE": "cpu", "MINISEGNET_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Sandbox:
    """One confined run of a student's file.

    ``Sandbox(question_name, path, entries, answer_key, timeout, memory)``; use as a
    context manager. :meth:`start` loads the file (returns the ``loaded`` frame or raises
    :class:`Stopped`); :meth:`request` sends one request and returns its reply frame;
    :meth:`finish` asks for the final ``done`` frame. ``output`` holds the captured
    standard output and error (capped).
    """

    def __init__(self, question, path, entries=(), answer_key=(), timeout=20.0,
                 memory=DEFAULT_MEMORY, fsize=DEFAULT_FSIZE, output_cap=OUTPUT_CAP):
        self.question, self.path = question, str(path)
        self.entries, self.answer_key = list(entries), list(answer_key)
        self.timeout, self.memory, self.fsize, self.output_cap = timeout, memory, fsize, output_cap
        self.nonce = secrets.token_hex(16)
        self.output = {"stdout": bytearray(), "stderr": bytearray()}
        self.dropped = {"stdout": 0, "stderr": 0}
        self.problems = []          # forged or unexpected frames
        self.proc = None
        self._ids = 0
        self._stopped = None
        self._buffer = bytearray()

    # -------------------------------------------------------------- process lifetime
    def __enter__(self):
        become_subreaper()
        self._tmp = tempfile.TemporaryDirectory(prefix="minisegnet-grade-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        try:
            with _registry_lock:            # registered before another thread looks for orphans
                self.proc = subprocess.Popen(
                    [sys.executable, "-s", "-c", _RUNNER_SOURCE, str(to_child_r), str(from_child_w)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(to_child_r, from_child_w), cwd=self._tmp.name,
                    env=scrubbed_env(self._tmp.name), start_new_session=(os.name == "posix"))
                _live_runners.add(self.proc.pid)
                if not _first_runner_start:
                    _first_runner_start.append(_start_time(self.proc.pid) or 0)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.deadline = time.monotonic() + self.timeout
        os.set_blocking(self._to_child, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._from_child, selectors.EVENT_READ, "frames")
        self._selector.register(self.proc.stdout, selectors.EVENT_READ, "stdout")
        self._selector.register(self.proc.stderr, selectors.EVENT_READ, "stderr")
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self.proc is None:
            return
        kill_tree(self.proc)
        self._selector.close()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.proc.stdout.close()
        self.proc.stderr.close()
        with contextlib.suppress(OSError):
            self._tmp.cleanup()
        self.proc = None

    # -------------------------------------------------------------- the channel
    def _pump(self, outgoing=b""):
        """Write ``outgoing``, then read until one whole frame has arrived; meanwhile keep
        the captured output up to its cap. Raises :class:`Stopped` at the deadline or when
        the channel closes."""
        pending = memoryview(outgoing)
        if pending:
            self._selector.register(self._to_child, selectors.EVENT_WRITE, "requests")
        try:
            while True:
                frame = self._frame_from_buffer()
                if frame is not None and not pending:
                    return frame
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise Stopped(f"time limit exceeded ({self.timeout:g} s): is there an endless loop?")
                for key, _ in self._selector.select(timeout=min(left, 1.0)):
                    if key.data == "requests":
                        try:
                            pending = pending[os.write(self._to_child, pending):]
                        except BlockingIOError:
                            continue
                        except BrokenPipeError:
                            raise Stopped(self._ended()) from None
                        if not pending:
                            self._selector.unregister(self._to_child)
                    elif key.data == "frames":
                        chunk = os.read(self._from_child, 1 << 20)
                        if not chunk:
                            raise Stopped(self._ended())
                        self._buffer += chunk
                    else:
                        self._capture(key)
        finally:
            if pending:
                self._selector.unregister(self._to_child)

    def _capture(self, key):
        chunk = os.read(key.fileobj.fileno(), 1 << 16)
        if not chunk:
            self._selector.unregister(key.fileobj)
            return
        kept = self.output[key.data]
        room = max(0, self.output_cap - len(kept))
        kept += chunk[:room]
        self.dropped[key.data] += len(chunk) - min(room, len(chunk))

    def _frame_from_buffer(self):
        while len(self._buffer) >= 4:
            (n,) = struct.unpack(">I", self._buffer[:4])
            if n > runner.MAX_FRAME:
                raise Stopped(f"a result frame of {format_bytes(n)} is over the limit of "
                              f"{format_bytes(runner.MAX_FRAME)}")
            if len(self._buffer) < 4 + n:
                return None
            body = bytes(self._buffer[4:4 + n])
            del self._buffer[:4 + n]
            try:
                frame = runner.json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                self.problems.append("an unreadable frame on the result channel")
                continue
            if not isinstance(frame, dict) or frame.get("nonce") != self.nonce:
                self.problems.append("a forged frame on the result channel (wrong nonce)")
                continue
            return frame
        return None

    def _ended(self):
        """Why the runner stopped answering, from its exit status and its last words."""
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        self._drain()
        err = self.output["stderr"].decode("utf-8", "replace")
        if any(s in err for s in ("MemoryError", "failed to map segment", "Cannot allocate memory")):
            return f"over the memory limit ({format_bytes(self.memory)}): your code needs too much memory"
        last = err.strip().splitlines()[-1:] if err.strip() else []
        return (f"the grading process stopped (exit code {code})"
                + (f": {last[0][:200]}" if last else ""))

    def _drain(self):
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            events = self._selector.select(timeout=0.05)
            captured = [k for k, _ in events if k.data in ("stdout", "stderr")]
            if not captured:
                return
            for key in captured:
                self._capture(key)

    def _exchange(self, message):
        if self._stopped is not None:
            raise Stopped(self._stopped)
        try:
            return self._pump(runner.pack(message))
        except Stopped as stop:
            self._stopped = str(stop)
            raise

    def start(self):
        """Send the start frame; returns the ``loaded`` or ``load_error`` frame."""
        return self._exchange({"op": "start", "nonce": self.nonce, "question": self.question,
                               "path": self.path, "entries": self.entries,
                               "answer_key": self.answer_key,
                               "limits": {"memory": self.memory, "fsize": self.fsize}})

    def request(self, op, **fields):
        """One request (``call`` or ``module``); returns the reply frame for it."""
        self._ids += 1
        frame = self._exchange(dict(fields, op=op, id=self._ids))
        while frame.get("id") != self._ids:
            self.problems.append("a result frame for a request that was not asked")
            frame = self._await()
        return frame

    def _await(self):
        if self._stopped is not None:
            raise Stopped(self._stopped)
        try:
            return self._pump()
        except Stopped as stop:
            self._stopped = str(stop)
            raise

    def finish(self):
        """Ask for the final ``done`` frame; True when it came."""
        try:
            return self._exchange({"op": "done"}).get("op") == "done"
        except Stopped:
            return False

    def captured(self, stream):
        """The captured text of ``'stdout'`` or ``'stderr'`` (with a note when cut)."""
        text = self.output[stream].decode("utf-8", "replace")
        if self.dropped[stream]:
            text += f"\n[... {format_bytes(self.dropped[stream])} more dropped]"
        return text


class StudentError(Exception):
    """The student's code raised (or ran out of memory) while serving a request;
    ``error`` is the runner's description ``{'kind', 'type', 'message', 'line'}``."""

    def __init__(self, error):
        super().__init__(error.get("message", ""))
        self.error = error


class RemoteStudent:
    """The student's module as the checks see it: ``student.iou(a, b)`` calls ``iou`` in the
    sandbox and returns the raw result (arrays, numbers, lists); ``student.module(...)``
    runs one of the student's nn.Modules there. Raises :class:`StudentError` or
    :class:`Stopped`."""

    def __init__(self, sandbox):
        self._sandbox = sandbox

    def __getattr__(self, entry):
        if entry.startswith("_"):
            raise AttributeError(entry)

        def call(*args, **kwargs):
            frame = self._sandbox.request("call", entry=entry, args=runner.encode(list(args)),
                                          kwargs=runner.encode(kwargs))
            return self._value(frame)
        call.__name__ = entry
        return call

    def module(self, entry, kwargs, state, inputs, as_list=False, train=False, grads=False,
               upstream=None, extra_args=()):
        """Build ``entry(**kwargs)`` in the sandbox, load ``state`` (name -> array), run it on
        ``inputs`` (a list of arrays) followed by ``extra_args`` (plain values, e.g. a grid
        size) and, with ``grads``, backpropagate ``upstream``.
        Returns ``{'output', 'connected', 'input_grads', 'param_grads'}`` or ``{'problem'}``."""
        spec = {"entry": entry, "kwargs": kwargs, "state": state, "inputs": list(inputs),
                "as_list": as_list, "train": train, "grads": grads, "upstream": upstream,
                "extra_args": list(extra_args)}
        return self._value(self._sandbox.request("module", module=runner.encode(spec)))

    @staticmethod
    def _value(frame):
        if frame.get("op") == "result":
            return runner.decode(frame.get("value"))
        if frame.get("op") == "raised":
            raise StudentError(frame.get("error") or {})
        raise Stopped("the grading process sent an unexpected reply")
