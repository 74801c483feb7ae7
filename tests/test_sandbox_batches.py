"""How a batch moves through the sandbox workers: the next job is sent while the worker runs
the current one (small jobs only), jobs are prepared and results finished in the workers'
threads, a lost worker is replaced with nothing lost but its own job, and workers are pinned
one per CPU."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from sandbox_programs import CORRECT, TESTS, process_parents

from vstar.checkers.code import CodeChecker
from vstar.errors import VstarError
from vstar.sandbox.assert_rewrite import compile_test
from vstar.sandbox.harness import PIPELINE_BYTES, RunResult, _worker_cpus


def started_checker(workers: int) -> CodeChecker:
    checker = CodeChecker({"timeout": 5.0, "workers": workers})
    try:
        checker.check([CORRECT], [TESTS], [""])
    except VstarError as error:
        checker.close()
        if os.environ.get("VSTAR_REQUIRE_BWRAP"):
            raise
        pytest.skip(f"bubblewrap cannot run here: {error}")
    return checker


def test_a_lost_worker_costs_only_its_own_job():
    checker = started_checker(workers=1)
    worker = checker._sandbox._workers[0]  # type: ignore[union-attr]
    first_pid = worker.process.pid  # bubblewrap; the worker is its child
    (worker_pid,) = [pid for pid, parent in process_parents().items() if parent == first_pid]
    slow = "import time\ntime.sleep(1.5)\n" + CORRECT
    killer = threading.Timer(0.5, os.kill, (worker_pid, signal.SIGKILL))
    try:
        killer.start()
        verdicts = checker.check([slow, CORRECT, "def f(x):\n    return x\n"], [TESTS] * 3, [""] * 3)
    finally:
        killer.cancel()
        checker.close()
    assert verdicts[0].status == "error" and "sandbox worker" in verdicts[0].reason
    # the job already sent to the killed worker went to its replacement
    assert [v.status for v in verdicts[1:]] == ["passed", "failed"]
    assert worker.process.pid != first_pid


def test_prepare_and_finish_run_in_the_workers_threads_and_keep_the_order():
    checker = started_checker(workers=2)
    sandbox = checker._sandbox
    assert sandbox is not None
    threads: set[str] = set()

    def prepare(index, job):
        threads.add(threading.current_thread().name)
        return {**job, "tests": [compile_test(f"assert f({index}) == {index}")]}

    def finish(index, result):
        threads.add(threading.current_thread().name)
        assert isinstance(result, RunResult)
        return index, [record[0] for record in result.records]

    jobs = [{"program": "def f(x):\n    return x\n", "setup": "", "tests": []}] * 6
    try:
        results = sandbox.run(jobs, prepare=prepare, finish=finish)
        with pytest.raises(ZeroDivisionError):  # stops the batch and reaches the caller
            sandbox.run(jobs, finish=lambda index, result: 1 / 0)
        assert checker.check([CORRECT], [TESTS], [""])[0].status == "passed"  # still usable
        with pytest.raises(ZeroDivisionError):  # with jobs already sent
            sandbox.run(jobs, prepare=lambda index, job: prepare(index, job) if index < 3 else 1 / 0)
        assert checker.check([CORRECT], [TESTS], [""])[0].status == "passed"
    finally:
        checker.close()
    assert results == [(index, ["check", "end", "done"]) for index in range(6)]
    assert threads and all(name.startswith("vstar-sandbox") for name in threads)


def test_big_jobs_and_big_replies_do_not_block_each_other():
    big_program = CORRECT + "# " + "x" * (4 * PIPELINE_BYTES) + "\n"  # too big to send early
    big_report = "def f(x):\n    return list(range(100_000))\n"  # a ~1 MB check record
    programs = [big_report, big_program, CORRECT, big_report, big_program]
    tests = [["assert f(1) == list(range(100_000))"], TESTS, TESTS, ["assert f(1) == list(range(100_000))"], TESTS]
    checker = started_checker(workers=1)
    started = time.monotonic()
    try:
        verdicts = checker.check(programs, tests, [""] * len(programs))
    finally:
        checker.close()
    assert [v.status for v in verdicts] == ["passed"] * len(programs)
    assert time.monotonic() - started < 30


def test_one_worker_per_cpu_is_pinned_and_other_counts_are_not():
    allowed = sorted(os.sched_getaffinity(0))
    assert _worker_cpus(len(allowed)) == allowed
    assert _worker_cpus(2 * len(allowed)) == allowed * 2
    if len(allowed) > 1:
        assert _worker_cpus(len(allowed) + 1) == [None] * (len(allowed) + 1)
    checker = started_checker(workers=len(allowed))
    program = "import os\ndef f(x):\n    return len(os.sched_getaffinity(0))\n"
    try:
        verdicts = checker.check([program] * 8, [["assert f(0) == 1"]] * 8, [""] * 8)
    finally:
        checker.close()
    assert all(v.status == "passed" for v in verdicts), verdicts[0].reason
