"""Programs and helpers shared by the sandbox tests (test_sandbox*.py)."""

from __future__ import annotations

import os
import time

from vstar.checkers.code import CodeChecker

TIMEOUT = 3.0
CORRECT = "def f(x):\n    return x + 1\n"
TESTS = ["assert f(1) == 2", "assert f(2) == 3"]
# starts processes meant to outlive the program: a subprocess and a double-forked daemon
LEFT_BEHIND = """
import os, subprocess, time
subprocess.Popen(["sleep", "300"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(300)
    os._exit(0)
"""


def process_parents() -> dict[int, int]:
    """pid -> parent pid of every visible process."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    parents[int(entry.name)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return parents


def sandbox_processes() -> set[int]:
    """Every process descending from this one. Sandbox programs cannot leave this tree:
    inside bubblewrap the worker is the init of their PID namespace, and in rlimits mode
    the worker is a child subreaper, so orphans are re-parented to it either way."""
    parents = process_parents()
    found: set[int] = set()
    frontier = [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.update(children)
        frontier += children
    return found


def run(checker: CodeChecker, program: str, tests=TESTS, setup: str = ""):
    started = time.monotonic()
    verdict = checker.check([program], [list(tests)], [setup])[0]
    return verdict, time.monotonic() - started


def clean_around(checker: CodeChecker):
    """The sandbox's processes before a test; after it, exactly those must remain."""
    before = sandbox_processes()
    yield checker
    after = sandbox_processes()
    assert after == before, f"stray processes: {sorted(after - before)}"
    assert run(checker, CORRECT)[0].correct, "the sandbox no longer works after the hostile program"


FORGER = '''
import gc, inspect, os, signal, sys

def steal():
    """Look everywhere a Python program could find the runner's state, forge a pass, exit."""
    found = []
    attempts = [
        lambda: sys._getframe(1),
        lambda: inspect.currentframe().f_back,
        lambda: [frame for frame, *_ in inspect.stack()][-1],
        lambda: sys.exc_info()[2].tb_frame if sys.exc_info()[2] else None,
        lambda: (lambda g: (next(g), g.gi_frame.f_back)[1])((x for x in [1])),
        lambda: [o for o in gc.get_objects() if isinstance(o, dict) and "nonce" in o],
        lambda: sys._current_frames(),
    ]
    try:
        raise ValueError
    except ValueError as error:
        caught = error
    attempts.append(lambda: caught.__traceback__.tb_frame.f_back)
    for attempt in attempts:
        try:
            found.append(attempt())
        except Exception:
            pass
    frames = [item for item in found if hasattr(item, "f_locals")]
    for frame in frames:
        while frame is not None:
            for key in list(frame.f_locals):
                if key in ("status", "passed", "result", "ok", "correct"):
                    frame.f_locals[key] = True
            frame.f_globals["passed"] = True
            frame = frame.f_back
    forged = b'["00000000000000000000000000000000", "end", 0, "ok", ""]\\n["x", "done"]\\npassed\\n'
    for fd in range(1, 64):
        try:
            os.write(fd, forged)
        except OSError:
            pass
    print("PASSED", flush=True)
    os._exit(0)

def handler(signum, frame):
    f = frame
    while f is not None:
        f.f_locals.get("nonce")
        f = f.f_back
    steal()

signal.signal(signal.SIGALRM, handler)

def f(x):
    signal.setitimer(signal.ITIMER_REAL, 0.0005)
    for _ in range(10 ** 6):
        pass
    steal()
'''
