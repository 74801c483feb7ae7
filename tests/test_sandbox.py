"""The code sandbox against hostile programs: each test checks the verdict AND that nothing
outside the sandbox changed (files, environment, the harness, stray processes).

Needs bubblewrap (OS package ``bubblewrap``); the tests are skipped, with the reason, when
it cannot run here. The weaker ``isolation: rlimits`` mode: test_sandbox_rlimits.py.
"""

from __future__ import annotations

import collections
import decimal
import fractions
import json
import os
import socket
import threading
import time
from pathlib import Path
from textwrap import dedent

import pytest
from sandbox_programs import CORRECT, FORGER, LEFT_BEHIND, TESTS, TIMEOUT, clean_around, run, sandbox_processes

from vstar.checkers.code import CodeChecker, check_programs
from vstar.errors import VstarError
from vstar.sandbox import Sandbox
from vstar.sandbox.client import PROGRAM_ENV
from vstar.sandbox.values import Opaque, compare, decode, encode_json


@pytest.fixture(scope="module")
def bwrap_checker():
    try:
        checker = CodeChecker({"timeout": TIMEOUT, "workers": 2})
        checker.check([CORRECT], [TESTS], [""])  # starts the workers, or says why bwrap cannot run
    except VstarError as error:
        if os.environ.get("VSTAR_REQUIRE_BWRAP"):  # CI installs bubblewrap: a skip there would hide a failure
            raise
        pytest.skip(f"bubblewrap cannot run here: {error}")
    yield checker
    checker.close()


@pytest.fixture()
def checker(bwrap_checker):
    yield from clean_around(bwrap_checker)


@pytest.fixture(scope="module")
def one_worker(bwrap_checker):
    """A sandbox with a single worker: consecutive programs surely share it."""
    with CodeChecker({"timeout": TIMEOUT, "workers": 1}) as checker:
        checker.check([CORRECT], [TESTS], [""])  # start it before any test counts processes
        yield checker


def test_correct_and_wrong_programs(checker):
    assert run(checker, CORRECT)[0].status == "passed"
    verdict, _ = run(checker, "def f(x):\n    return x\n")
    assert verdict.status == "failed" and verdict.tests == ("failed", "failed")
    assert "left side: 1" in verdict.reason


def test_infinite_loop_times_out(checker):
    verdict, elapsed = run(checker, "def f(x):\n    while True:\n        pass\n")
    assert verdict.status == "timeout" and verdict.tests == ("timeout", "not_run")
    assert elapsed < TIMEOUT + 3


def test_loop_that_disables_alarms_and_ignores_sigterm(checker):
    program = dedent("""
        import signal
        for name in ("SIGALRM", "SIGTERM", "SIGXCPU", "SIGINT"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        signal.alarm(0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        def f(x):
            while True:
                pass
    """)
    verdict, elapsed = run(checker, program)
    assert verdict.status == "timeout" and elapsed < TIMEOUT + 3


def test_sleep_times_out_on_the_wall_clock(checker):
    verdict, elapsed = run(checker, "import time\ndef f(x):\n    time.sleep(100)\n")
    assert verdict.status == "timeout" and elapsed < TIMEOUT + 3


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit"])
def test_exit_before_the_tests_never_passes(checker, exit_call):
    verdict, _ = run(checker, CORRECT + exit_call + "\n")
    assert not verdict.correct and verdict.status == "error"
    assert verdict.tests == ("not_run", "not_run")


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit(0)"])
def test_exit_inside_a_test_never_passes(checker, exit_call):
    verdict, _ = run(checker, f"def f(x):\n    {exit_call}\n")
    assert not verdict.correct and verdict.status in ("failed", "error")


def test_eq_override_never_passes(checker):
    always_equal = "class Sly:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
    verdict, _ = run(checker, always_equal + "def f(x):\n    return Sly()\n")
    assert verdict.status == "failed" and "cannot be compared" in verdict.reason
    int_subclass = "class Sly(int):\n    def __eq__(self, other):\n        return True\n"
    verdict, _ = run(checker, int_subclass + "def f(x):\n    return Sly(0)\n")
    assert verdict.status == "failed"
    lying_bool = "class Sly:\n    def __bool__(self):\n        return True\ndef f(x):\n    return Sly()\n"
    verdict, _ = run(checker, lying_bool, tests=["assert f(1)"])
    assert verdict.status == "failed"
    verdict, _ = run(checker, "def f(x):\n    return 1\n", tests=["assert f(1) is True"])
    assert verdict.status == "failed"


def test_patched_builtins_do_not_reach_the_tests(checker):
    program = "import builtins\nbuiltins.abs = lambda x: 0\nbuiltins.len = lambda x: 3\ndef f(x):\n    return x * 10\n"
    verdict, _ = run(checker, program, tests=["assert abs(f(1) - 2) < 1e-9", "assert len(str(f(1))) == 3"])
    assert verdict.status == "failed" and verdict.tests == ("failed", "failed")


def test_frame_walking_forgery_never_passes(checker):
    verdict, _ = run(checker, FORGER)
    assert not verdict.correct and verdict.status in ("error", "failed")
    assert verdict.tests[0] != "passed"


def test_introspection_is_blocked(checker):
    program = dedent("""
        import gc, sys
        def f(x):
            return x
        def hook_added():
            seen = []
            sys.addaudithook(lambda event, args: seen.append(event))
            compile("1", "<x>", "eval")
            return "added" if seen else "refused"
        def blocked(expression):
            try:
                result = eval(expression)
            except Exception as error:
                return type(error).__name__
            return result if result == "refused" else "allowed"
    """)
    probes = {
        "sys._getframe()": "ValueError",
        "gc.get_objects()": "RuntimeError",
        "gc.get_referrers(f)": "RuntimeError",
        "(lambda: (yield))().gi_frame": "AttributeError",
        "sys.settrace(lambda *a: None)": "RuntimeError",
        "hook_added()": "refused",
        "__import__('ctypes').string_at(0)": "RuntimeError",
        "gc.set_debug(gc.DEBUG_SAVEALL)": "RuntimeError",
    }
    tests = [f"assert blocked({expression!r}) == {name!r}" for expression, name in probes.items()]
    verdict, _ = run(checker, program, tests=tests)
    assert verdict.status == "passed", verdict.reason


def test_writes_outside_the_sandbox_tmp_fail(checker, one_worker, tmp_path, repo):
    targets = [tmp_path / "via_open.txt", tmp_path / "via_os_open.txt", repo / "sandbox_escape.txt"]
    marker = f"vstar_marker_{os.getpid()}"
    program = dedent(f"""
        import os
        def attempt(write, path):
            try:
                write(path)
                return True
            except OSError:
                return False
        def f(paths):
            results = [attempt(lambda p: open(p, "w").write("x"), paths[0])]
            results.append(attempt(lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY)), paths[1]))
            results.append(attempt(lambda p: open(p, "w").write("x"), paths[2]))
            results.append(attempt(lambda p: open(p, "w").write("x"), "/usr/vstar_escape"))
            open("/tmp/{marker}", "w").write("inside")
            return results
    """)
    paths = [str(path) for path in targets]
    verdict, _ = run(one_worker, program, tests=[f"assert f({paths!r}) == [True, True, True, True]"])
    assert verdict.status == "failed" and "[False, False, False, False]" in verdict.reason
    assert not any(path.exists() for path in targets)
    assert not Path("/usr/vstar_escape").exists() and not Path(f"/tmp/{marker}").exists()
    look = f"import os\ndef f(x):\n    return os.path.exists('/tmp/{marker}')\n"
    assert run(one_worker, look, tests=["assert f(0) == False"])[0].correct, "a program's /tmp file reached the next"


def test_deletes_fail(checker, tmp_path):
    victims = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for victim in victims:
        victim.write_text("keep")
    program = dedent("""
        import os, posix
        def f(paths):
            done = []
            for remove, path in ((os.unlink, paths[0]), (posix.unlink, paths[1]), (os.unlink, os.__file__)):
                try:
                    remove(path)
                    done.append(path)
                except OSError:
                    pass
            return done
    """)
    verdict, _ = run(checker, program, tests=[f"assert f({[str(v) for v in victims]!r}) != []"])
    assert verdict.status == "failed"
    assert all(victim.read_text() == "keep" for victim in victims)
    assert Path(os.__file__).exists()


def test_environment_secret_is_not_visible(bwrap_checker, monkeypatch):
    monkeypatch.setenv("VSTAR_TEST_SECRET", "hunter2")
    program = dedent("""
        import os
        def f():
            found = os.environ.get("VSTAR_TEST_SECRET")
            try:
                found = found or ("hunter2" in open("/proc/1/environ").read())
            except OSError:
                pass
            return found
    """)
    tests = [["assert f() == 'hunter2'", "assert f()"]]
    verdict = check_programs([program], tests, [""], {"timeout": TIMEOUT, "workers": 1})[0]
    assert verdict.status == "failed" and verdict.tests == ("failed", "failed")
    assert os.environ["VSTAR_TEST_SECRET"] == "hunter2"


def test_programs_see_only_the_documented_environment(checker):
    program = "import os\nENVIRONMENT = dict(os.environ)\n"
    expected = {**PROGRAM_ENV, "PWD": "/tmp"}  # bwrap sets PWD; LD_BIND_NOW (the worker's) is gone
    verdict = run(checker, program, [f"assert ENVIRONMENT == {expected!r}"])[0]
    assert verdict.correct, verdict.reason


def test_loopback_connection_fails(checker):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted = []

    def accept() -> None:
        deadline = time.monotonic() + TIMEOUT + 1
        while time.monotonic() < deadline:
            try:
                accepted.append(listener.accept())
            except socket.timeout:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    program = dedent("""
        import socket
        def f(port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return "connected"
            except OSError as error:
                return type(error).__name__
    """)
    verdict, _ = run(checker, program, tests=[f"assert f({port}) == 'connected'"])
    thread.join()
    listener.close()
    assert verdict.status == "failed" and not accepted


def test_killing_the_parent_fails(checker):
    workers_before = sandbox_processes()
    program = dedent(f"""
        import os, signal
        for pid in (os.getppid(), 1, {os.getpid()}, {os.getppid()}):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    """) + CORRECT
    verdict, _ = run(checker, program)
    assert verdict.status == "passed"  # every kill failed; the program went on
    assert sandbox_processes() == workers_before  # same workers: none was killed and restarted


def test_fork_flood_is_limited_and_cleaned_up(checker):
    program = dedent("""
        import os
        def f(x):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """)
    verdict, elapsed = run(checker, program)
    assert verdict.status == "timeout" and elapsed < TIMEOUT + 5


def test_grandchildren_left_running_are_killed(checker):
    verdict, elapsed = run(checker, LEFT_BEHIND + CORRECT)
    assert verdict.status == "passed" and elapsed < TIMEOUT  # and the fixture finds no process left


def test_six_gib_allocation_fails(checker):
    verdict, _ = run(checker, "data = bytearray(6 * 1024 ** 3)\n" + CORRECT)
    assert verdict.status == "error" and "MemoryError" in verdict.reason
    verdict, _ = run(checker, "def f(x):\n    return len(bytearray(6 * 1024 ** 3))\n")
    assert verdict.status == "failed" and "MemoryError" in verdict.reason


def test_300_mb_of_output_is_drained_and_capped(checker):
    program = "import os\nblock = b'x' * (1 << 20)\nfor _ in range(300):\n    os.write(1, block)\n" + CORRECT
    verdict, elapsed = run(checker, program)
    assert verdict.status == "passed" and elapsed < TIMEOUT
    with Sandbox({"timeout": TIMEOUT, "workers": 1}) as sandbox:
        result = sandbox.run([{"program": program, "setup": "", "tests": []}])[0]
    assert result.output_total == 300 << 20 and len(result.output) == 64 << 10


def test_recursion_overflow_is_a_failed_test(checker):
    verdict, _ = run(checker, "def f(x):\n    return f(x + 1)\n")
    assert verdict.status == "failed" and "RecursionError" in verdict.reason


def test_c_stack_overflow_crashes_only_the_child(checker):
    program = dedent("""
        import sys
        sys.setrecursionlimit(10 ** 7)
        class Deep:
            def __getattr__(self, name):
                return getattr(self, name)
        def f(x):
            return Deep().anything
    """)
    verdict, _ = run(checker, program)
    assert verdict.status == "error" and "SIGSEGV" in verdict.reason
    verdict, _ = run(checker, "import ctypes\nctypes.string_at(0)\n" + CORRECT)
    assert verdict.status == "error" and "blocked" in verdict.reason


def test_reading_stdin_gets_nothing_at_once(checker):
    program = "import sys\ndata = sys.stdin.read()\ntry:\n    input()\nexcept EOFError:\n    pass\n" + CORRECT
    verdict, elapsed = run(checker, program, tests=TESTS + ["assert data == ''"])
    assert verdict.status == "passed" and elapsed < TIMEOUT


def test_closing_stdout_does_not_matter(checker):
    program = "import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\n" + CORRECT
    assert run(checker, program)[0].status == "passed"
    close_all = "import os\nfor fd in range(64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass\n"
    verdict, _ = run(checker, close_all + CORRECT)
    assert verdict.status == "error"  # the report pipe is gone too: no verdict can pass


def test_lingering_non_daemon_thread_still_passes_quickly(checker):
    program = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n" + CORRECT
    verdict, elapsed = run(checker, program)
    assert verdict.status == "passed" and elapsed < TIMEOUT / 2


def test_files_a_program_hides_are_still_removed(checker, one_worker):
    program = dedent("""
        import os
        path = "/tmp"
        for depth in range(300):
            path = os.path.join(path, "d")
            os.mkdir(path)
        open(os.path.join(path, "f"), "w").write("x")
        os.chmod("/tmp/d", 0)
        try:
            os.chmod("/tmp", 0)
        except OSError:
            pass
    """) + CORRECT
    assert run(one_worker, program)[0].status == "passed"
    after = "import os\ndef f(x):\n    return os.listdir('/tmp')\n"
    assert run(one_worker, after, tests=["assert f(0) == []"])[0].correct
    # the mode alone changed (where the sandbox user owns /tmp): the next program can still write
    chmod_only = "import os\ntry:\n    os.chmod('/tmp', 0o500)\nexcept OSError:\n    pass\n" + CORRECT
    assert run(one_worker, chmod_only)[0].status == "passed"
    writes = "import os\ndef f(x):\n    open('/tmp/new', 'w').close()\n    return os.listdir('/tmp')\n"
    assert run(one_worker, writes, tests=["assert f(0) == ['new']"])[0].correct
    assert run(one_worker, after, tests=["assert f(0) == []"])[0].correct  # one file, then none


PLAIN_VALUES = [
    None, True, False, 0, -7, 2**100, 1.5, -0.0, float("inf"), 1 + 2j, "", "é\x00\"\\\ud800", b"\x00\xff",
    bytearray(b"ab"), ..., range(1, 10, 3), [1, [2, (3,)]], (1,), {1, "a"}, frozenset({2}), {"a": [1]},
    collections.OrderedDict(b=1, a=2), collections.Counter("abca"), collections.deque([1, 2]),
    fractions.Fraction(3, 7), decimal.Decimal("1.10"), collections.defaultdict(list, {1: [2]}),
]


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=lambda value: type(value).__name__)
def test_plain_values_cross_the_boundary_with_their_types(value):
    decoded = decode(json.loads(encode_json(value)))
    if type(value) is collections.defaultdict:  # its default factory cannot travel: a dict
        value = dict(value)
    assert type(decoded) is type(value) and decoded == value and repr(decoded) == repr(value)


def test_values_that_cannot_be_checked_are_opaque():
    class Sly(list):
        def __eq__(self, other):
            return True

    calls = []

    class Posing(type):  # its classes claim to be int to any hash-and-== lookup
        def __hash__(cls):
            calls.append("hash")
            return hash(int)

        def __eq__(cls, other):
            calls.append("eq")
            return True

    for value in (Sly(), object(), iter([1]), [1, [2, Sly()]], {"k": object()}, Posing("Fake", (), {})()):
        with pytest.raises(Opaque):
            encode_json(value)
    assert calls == []  # the encoder never runs a program's methods to find a value's type
    nested: list = []
    for _ in range(200):
        nested = [nested]
    with pytest.raises(Opaque, match="deeply"):
        encode_json(nested)
    assert compare("==", 1, 1.0) and not compare("==", (1,), [1]) and compare("is", None, None)
    assert not compare("==", float("nan"), float("nan"))
