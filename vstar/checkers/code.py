"""Check programs against unit tests in the sandbox; the verdicts are decided here, outside it.

``check_programs(programs, tests, setups, options)`` runs program ``i`` after
``setups[i]`` in a fresh sandboxed child, then each statement of ``tests[i]`` in turn,
and returns one ``Verdict`` per program (``answer`` is None: code has no final answer).

How a test is judged:
  - every ``assert`` in a test (also inside functions the test defines, such as
    HumanEval's ``check``) is rewritten before it reaches the sandbox: ``assert a OP b``
    (one comparison: == != < <= > >= in, not in, is, is not) sends ``a`` and ``b``,
    ``assert not x`` and ``assert x`` send ``x``, as plain values (exact built-in types;
    see ``vstar.sandbox.values``). They are compared again here, so a program object whose
    ``__eq__`` or ``__bool__`` lies never passes; a value that is not plain fails the
    assert. ``is``/``is not`` against anything but None/True/False/... is identity,
    checked in the sandbox (identity cannot be faked);
  - a test passes when the child reports that it returned, under the job's random
    nonce, and every value it checked holds here. A child that exits, crashes or is
    killed before reporting, for any reason (``sys.exit(0)`` and ``os._exit(0)``
    included), does not pass.
Tests run with the builtins as they were before the program, but share the modules it
imported: a program that monkeypatches, say, ``math.isclose`` can fool a test that calls
it. Comparisons (``==`` ...) are immune to that.

Statuses: ``passed`` (all tests passed), ``failed`` (the program ran; some test failed
or raised), ``timeout`` (wall-clock or CPU limit), ``error`` (the program or setup did
not load, the child crashed or exited early, or the sandbox lost the worker).
``Verdict.tests`` holds one of passed / failed / error / timeout / not_run per test.
"""

from __future__ import annotations

import signal
from typing import Any, Mapping, Sequence

from vstar.checkers.verdict import Verdict
from vstar.errors import VstarError
from vstar.sandbox import (
    COMPARISONS,
    SANDBOX_OPTION_KEYS,
    DecodeError,
    RunResult,
    Sandbox,
    SandboxOptions,
    compare,
    compile_test,
    decode,
    sandbox_options,
)

#: sandbox keys a code task accepts among its own options (None: the sandbox default)
SANDBOX_TASK_OPTIONS: dict[str, Any] = {key: None for key in SANDBOX_OPTION_KEYS}
_CHECKED_OPERATORS = frozenset(COMPARISONS) | {"is", "is not"}
_VALUE_CHARS = 80


def check_programs(
    programs: Sequence[str],
    tests: Sequence[Sequence[str]],
    setups: Sequence[str],
    options: Mapping[str, Any] | None = None,
) -> list[Verdict]:
    """One verdict per program (see the module docstring). ``options``: ``SandboxOptions`` keys."""
    with CodeChecker(options) as checker:
        return checker.check(programs, tests, setups)


def task_sandbox_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The sandbox keys set (not None) in a code task's options."""
    return {key: settings[key] for key in SANDBOX_OPTION_KEYS if settings.get(key) is not None}


class CodeChecker:
    """Holds a sandbox between batches (started on first use); ``close()`` releases it."""

    def __init__(self, options: Mapping[str, Any] | SandboxOptions | None = None, where: str = "sandbox options"):
        self.options = options if isinstance(options, SandboxOptions) else sandbox_options(options, where)
        self._sandbox: Sandbox | None = None

    def check(self, programs: Sequence[str], tests: Sequence[Sequence[str]], setups: Sequence[str]) -> list[Verdict]:
        _validate(programs, tests, setups)
        if not programs:
            return []
        jobs = [{"program": p, "setup": s, "tests": t} for p, t, s in zip(programs, tests, setups)]
        if self._sandbox is None:
            self._sandbox = Sandbox(self.options)
        timeout = self.options.timeout

        def judge(index: int, run: RunResult) -> Verdict:
            return verdict_from_run(run, len(tests[index]), timeout)

        # tests compiled, and verdicts decided, while other jobs run
        return self._sandbox.run(jobs, prepare=_compiled_tests, finish=judge)

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickles without the running sandbox (a copy, e.g. in a Ray worker, starts its own)."""
        return {"options": self.options, "_sandbox": None}

    def __enter__(self) -> "CodeChecker":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _validate(programs: Sequence[str], tests: Sequence[Sequence[str]], setups: Sequence[str]) -> None:
    if not len(programs) == len(tests) == len(setups):
        raise VstarError(
            "check_programs: programs, tests and setups must have one entry per program "
            f"(got {len(programs)}, {len(tests)}, {len(setups)})"
        )
    for i, (program, test_list, setup) in enumerate(zip(programs, tests, setups)):
        if not isinstance(program, str) or not isinstance(setup, str):
            raise VstarError(f"check_programs: programs[{i}] and setups[{i}] must be strings")
        if isinstance(test_list, str) or not all(isinstance(test, str) for test in test_list):
            raise VstarError(f"check_programs: tests[{i}] must be a list of Python statements (strings)")


# ------------------------------------------------------------------ rewriting asserts


def _compiled_tests(program: int, job: Mapping[str, Any]) -> dict[str, Any]:
    return {**job, "tests": [_compile_at(test, program, index) for index, test in enumerate(job["tests"])]}


def _compile_at(test: str, program: int, index: int) -> bytes:
    try:
        return compile_test(test)
    except SyntaxError as error:
        where = f"check_programs: tests[{program}][{index}]"
        raise VstarError(f"{where} is not valid Python: {error.msg} ({test[:80]!r})") from None


# ------------------------------------------------------------------ verdicts


def verdict_from_run(run: RunResult, test_count: int, timeout: float) -> Verdict:
    """The verdict for one program, from what its sandboxed child reported."""
    if run.worker_error is not None:
        return Verdict(False, "error", reason=run.worker_error, tests=("not_run",) * test_count)
    ends: dict[int, tuple[str, str]] = {}
    checks: dict[int, list[list]] = {}
    load_error, done = None, False
    tests = range(test_count)
    for record in run.records:
        kind = record[0]
        if kind == "end" and len(record) == 4 and record[1] in tests:
            ends.setdefault(record[1], (str(record[2]), str(record[3])))
        elif kind == "check" and len(record) >= 3 and record[1] in tests:
            checks.setdefault(record[1], []).append(record[2:])
        elif kind == "load" and len(record) == 2 and load_error is None:
            load_error = str(record[1])
        elif kind == "done":
            done = True
    if load_error is not None:
        return Verdict(False, "error", reason=f"program did not load: {load_error}", tests=("not_run",) * test_count)
    outcomes = [_test_outcome(j, ends.get(j), checks.get(j, [])) for j in range(test_count)]
    if not done:
        status, reason = _unfinished(run, timeout)
        statuses = tuple(o[0] if j in ends else "not_run" for j, o in enumerate(outcomes))
        if status == "timeout" and "not_run" in statuses:
            first = statuses.index("not_run")
            statuses = statuses[:first] + ("timeout",) + statuses[first + 1 :]
        return Verdict(False, status, reason=reason, tests=statuses)
    statuses = tuple(o[0] for o in outcomes)
    if all(status == "passed" for status in statuses):
        return Verdict(True, "passed", tests=statuses)
    reason = next(o[1] for o in outcomes if o[0] != "passed")
    return Verdict(False, "failed", reason=reason, tests=statuses)


def _test_outcome(index: int, end: tuple[str, str] | None, checks: list[list]) -> tuple[str, str]:
    """(status, reason) of one test from its end record and the values it checked."""
    if end is None:
        return "not_run", f"test {index + 1} did not run"
    child_status, child_reason = end
    for check in checks:
        holds, why = judge_check(check)
        if holds is None:
            return "error", f"test {index + 1}: {why}"
        if not holds:
            return "failed", f"test {index + 1} failed: {child_reason or 'assert'}{why}"
    if child_status == "ok":
        return "passed", ""
    if child_status == "failed":
        return "failed", f"test {index + 1} failed: {child_reason}"
    return "error", f"test {index + 1} raised {child_reason}"


def judge_check(check: list) -> tuple[bool | None, str]:
    """Re-evaluate one reported check here: (holds, detail); holds None when it raised."""
    kind = check[0] if check else None
    try:
        if kind == "cmp" and len(check) == 4 and type(check[1]) is str and check[1] in _CHECKED_OPERATORS:
            if check[1] == "==" and check[2] == check[3] and "nan" not in repr(check[2]):
                return True, ""  # the same plain value on both sides (NaN aside, it equals itself)
            left, right = decode(check[2]), decode(check[3])
            holds = compare(check[1], left, right)
            return holds, "" if holds else f" (left side: {_short(left)})"
        if kind in ("true", "false") and len(check) == 2:
            value = decode(check[1])
            holds = bool(value) == (kind == "true")
            return holds, "" if holds else f" (value: {_short(value)})"
        if kind == "opaque" and len(check) == 2:
            return False, f" ({check[1]})"
        if kind == "raised" and len(check) == 2:
            return None, f"raised {check[1]}"
    except DecodeError as error:
        return None, f"malformed report from the sandbox ({error})"
    except Exception as error:  # comparing plain values raised, e.g. 1 < "a"
        return None, f"raised {type(error).__name__}: {error}"
    return None, f"malformed report from the sandbox ({str(check)[:80]})"


def _unfinished(run: RunResult, timeout: float) -> tuple[str, str]:
    """(status, reason) for a child that ended without finishing its report."""
    if run.timed_out:
        return "timeout", f"timed out after {timeout:g} s"
    if run.signal == signal.SIGXCPU:
        return "timeout", "CPU time limit exceeded"
    if run.report_overflow:
        return "error", "the tests reported too much data"
    if run.signal is not None:
        return "error", f"killed by signal {_signal_name(run.signal)}"
    return "error", f"exited with code {run.exit_code} before the tests finished"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."
