"""Checks per second: vstar's math checker vs math-verify called directly, on the same inputs.

For each GSM8K test problem and each MATH-500 problem the inputs are two completions:
its gold solution (right) and a wrong one (GSM8K: the final number plus one; MATH-500:
the next problem's solution). vstar checks them in one batch with ``MathCheckPool``
(workers started before timing; their start-up time is printed separately);
math-verify runs in-process: ``verify(parse("$gold$"), parse(completion))``.
Agreement is the share of checks where both give the same verdict.

Then the regression set of real model outputs (``tests/data/math_outputs_smollm2.jsonl``,
labelled by math-verify and by hand where checkers disagree): agreement with its labels
of vstar strict, vstar flexible and math-verify.

    python bench/math_checker.py [--limit N] [--workers W] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

from vstar.checkers.math_pool import MathCheckPool

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_OUTPUTS = Path(__file__).resolve().parents[1] / "tests" / "data" / "math_outputs_smollm2.jsonl"


def gsm8k_inputs(data: Path, limit: int | None) -> tuple[list[str], list[str]]:
    """(gold answers, completions): each test problem's gold solution and a wrong one."""
    golds, completions = [], []
    for line in (data / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:limit]:
        solution = json.loads(line)["answer"]
        steps, _, final = solution.rpartition("####")
        final = final.strip().replace(",", "")
        golds += [final, final]
        completions += [f"{steps}The answer is {final}.", f"{steps}The answer is {int(final) + 1}."]
    return golds, completions


def math500_inputs(data: Path, limit: int | None) -> tuple[list[str], list[str]]:
    """(gold answers, completions): each problem's gold solution and the next problem's."""
    rows = [json.loads(line) for line in (data / "math500" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = rows[:limit]
    golds, completions = [], []
    for row, other in zip(rows, rows[1:] + rows[:1]):
        golds += [row["answer"], row["answer"]]
        completions += [row["solution"], other["solution"]]
    return golds, completions


def run_vstar(pool: MathCheckPool, golds: list[str], completions: list[str]) -> tuple[list[bool], float]:
    started = time.perf_counter()
    verdicts = pool.check_many(golds, completions)
    return [verdict.correct for verdict in verdicts], time.perf_counter() - started


def run_math_verify(golds: list[str], completions: list[str]) -> tuple[list[bool], float]:
    from math_verify import parse, verify

    started = time.perf_counter()
    verdicts = [bool(verify(parse(f"${gold}$"), parse(completion))) for gold, completion in zip(golds, completions)]
    return verdicts, time.perf_counter() - started


def compare(name: str, pool: MathCheckPool, golds: list[str], completions: list[str]) -> None:
    vstar_verdicts, vstar_seconds = run_vstar(pool, golds, completions)
    peer_verdicts, peer_seconds = run_math_verify(golds, completions)
    checks = len(golds)
    vstar_rate, peer_rate = checks / vstar_seconds, checks / peer_seconds
    agree = sum(a == b for a, b in zip(vstar_verdicts, peer_verdicts))
    print(
        f"{name:9s} {checks:6d} checks | vstar {vstar_rate:9.1f}/s ({sum(vstar_verdicts)} correct) | "
        f"math-verify {peer_rate:7.1f}/s ({sum(peer_verdicts)} correct) | "
        f"ratio {vstar_rate / peer_rate:6.1f}x | agreement {agree}/{checks} ({100 * agree / checks:.2f}%)"
    )
    for index, (ours, theirs) in enumerate(zip(vstar_verdicts, peer_verdicts)):
        if ours != theirs:
            tail = re.sub(r"\s+", " ", completions[index][-80:])
            print(f"    differs: gold {golds[index]!r} vstar={ours} math-verify={theirs} ... {tail!r}")


def real_outputs(workers: int | None) -> None:
    """Agreement with the hand-checked labels of real model outputs, for each checker."""
    rows = [json.loads(line) for line in REAL_OUTPUTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    golds, completions = [row["gold"] for row in rows], [row["completion"] for row in rows]
    labels = [row["label"] for row in rows]
    results = {}
    for mode in ("strict", "flexible"):
        with MathCheckPool(workers=workers, extraction=mode) as pool:
            results[f"vstar {mode}"] = run_vstar(pool, golds, completions)
    results["math-verify"] = run_math_verify(golds, completions)
    print(f"real outputs: {len(rows)} SmolLM2-135M-Instruct completions, {sum(labels)} labelled correct "
          f"({REAL_OUTPUTS.name})")
    for name, (verdicts, seconds) in results.items():
        agree = sum(verdict == label for verdict, label in zip(verdicts, labels))
        print(f"    {name:14s} agreement {agree}/{len(rows)} ({100 * agree / len(rows):.2f}%) | "
              f"{sum(verdicts)} correct | {len(rows) / seconds:9.1f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="problems per data set (default: all)")
    parser.add_argument("--workers", type=int, default=None, help="vstar worker processes")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with gsm8k/ and math500/")
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    with MathCheckPool(workers=args.workers) as pool:
        started = time.perf_counter()
        pool.compare([(str(n), f"\\sqrt{{{n * n}}}") for n in range(2 * pool.workers)])  # start the workers
        print(f"vstar: {pool.workers} worker processes started in {time.perf_counter() - started:.2f} s")
        compare("GSM8K", pool, *gsm8k_inputs(args.data, args.limit))
        compare("MATH-500", pool, *math500_inputs(args.data, args.limit))
    real_outputs(args.workers)


if __name__ == "__main__":
    main()
