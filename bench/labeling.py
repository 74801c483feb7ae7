"""Labels per second for MBPP samples: one local worker vs Ray with two workers, same samples.

The samples are MBPP programs from ``mbpp.jsonl`` through the ``mbpp`` task: for each problem
its reference solution and two broken variants (a wrong return value, and an exception at
import), so the checker sees passes, failures and errors. Both runs check the same list:

  - local: ``task.check_many`` in this process, the task's sandbox with one worker;
  - ray:   ``vstar.execution.ray_backend.check_with_ray`` with ``execution.num_workers`` = 2,
           each Ray task building the same task (one sandbox worker) for its chunk.

The Ray instance is started and warmed up (its worker processes import vstar) before timing;
the local sandbox worker is started before timing too. The verdicts must agree.

    python bench/labeling.py [--limit N] [--workers 2] [--isolation bwrap] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from vstar.config import from_dict
from vstar.tasks import get_task

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "mbpp.jsonl"


def broken_variants(solution: str) -> list[str]:
    """Two wrong versions of a reference completion: a changed return value, and an error at import."""
    wrong_value = solution.replace("return ", "return 1 + 0 * ", 1) if "return " in solution else "x = (\n[DONE]"
    raises = "raise RuntimeError('broken')\n" + solution
    return [wrong_value, raises]


def mbpp_samples(options: dict, limit: int | None) -> tuple[list, list[str]]:
    """(problem per sample, completion per sample): reference + two broken variants for each problem."""
    task = get_task("mbpp", {**options, "n_sft": limit})
    try:
        problems, completions = [], []
        for problem in task.problems("sft"):
            for completion in [problem.solution, *broken_variants(problem.solution)]:
                problems.append(problem)
                completions.append(completion)
        return problems, completions
    finally:
        task.close()


def run_local(options: dict, problems: list, completions: list[str]) -> tuple[list, float]:
    task = get_task("mbpp", options)
    try:
        task.check_many(problems[:1], completions[:1])  # start the sandbox worker
        started = time.perf_counter()
        verdicts = task.check_many(problems, completions)
        return verdicts, time.perf_counter() - started
    finally:
        task.close()


def ray_config(options: dict, workers: int):
    return from_dict({"task": {"name": "mbpp", "options": options},
                      "execution": {"backend": "ray", "num_workers": workers}})


def start_ray(config, problems: list, completions: list[str]) -> float:
    """Start Ray and warm its workers (they import vstar and build the task); the seconds it took."""
    from vstar.execution.ray_backend import check_with_ray
    from vstar.execution.ray_connection import connect

    started = time.perf_counter()
    connect(config)
    workers = config.execution.num_workers
    check_with_ray(config, problems[: 4 * workers], completions[: 4 * workers])
    return time.perf_counter() - started


def run_ray(config, problems: list, completions: list[str]) -> tuple[list, float]:
    from vstar.execution.ray_backend import check_with_ray

    started = time.perf_counter()
    verdicts = check_with_ray(config, problems, completions)
    return verdicts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="mbpp.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="first N train problems (default: all 374)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (labeling tasks in flight)")
    parser.add_argument("--isolation", default="bwrap", choices=["bwrap", "rlimits"])
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per program")
    parser.add_argument("--repeats", type=int, default=3, help="alternating local/Ray runs; medians reported")
    args = parser.parse_args()

    options = {"data_path": str(args.data), "isolation": args.isolation, "workers": 1, "timeout": args.timeout}
    problems, completions = mbpp_samples(options, args.limit)
    print(f"{len(completions)} MBPP samples ({len(completions) // 3} problems x reference + 2 broken), "
          f"{os.cpu_count()} CPUs, sandbox {args.isolation}, one sandbox worker per labeling process")
    config = ray_config(options, args.workers)
    startup = start_ray(config, problems, completions)
    local_times, ray_times, differ = [], [], 0
    for _ in range(args.repeats):
        local_verdicts, local_time = run_local(options, problems, completions)
        ray_verdicts, ray_time = run_ray(config, problems, completions)
        local_times.append(local_time)
        ray_times.append(ray_time)
        differ += sum(a.to_record() != b.to_record() for a, b in zip(local_verdicts, ray_verdicts))
    local_rate = len(completions) / statistics.median(local_times)
    ray_rate = len(completions) / statistics.median(ray_times)
    print(f"local, 1 worker: {local_rate:8.1f} labels/s  (median of {args.repeats}: "
          f"{', '.join(f'{t:.2f}' for t in local_times)} s; {sum(v.correct for v in local_verdicts)} correct)")
    print(f"ray, {args.workers} workers: {ray_rate:8.1f} labels/s  (median of {args.repeats}: "
          f"{', '.join(f'{t:.2f}' for t in ray_times)} s; {sum(v.correct for v in ray_verdicts)} correct; "
          f"Ray start-up and warm-up {startup:.1f} s not counted)")
    print(f"ratio: {ray_rate / local_rate:.2f}x; load average {os.getloadavg()[0]:.1f}")
    print(f"verdicts differ on {differ} of {len(completions) * args.repeats} sample checks")


if __name__ == "__main__":
    main()
