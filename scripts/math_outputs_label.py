"""Label sampled model outputs for the math checker's regression set (tests/data/math_outputs_smollm2.jsonl).

    python scripts/math_outputs_label.py [--raw runs/math_outputs/raw.jsonl]
        [--hand-labels FILE] [--out tests/data/math_outputs_smollm2.jsonl] [--review runs/math_outputs/review.txt]

Each row of ``--raw`` (from ``scripts/math_outputs_generate.py``) is labelled by
math-verify, called as its README shows (``verify(parse("$gold$"), parse(completion))``),
in worker processes: math-verify's own timeouts use ``signal.alarm``, which works in a
worker's main thread, and a row that still takes longer than ``HARD_TIMEOUT_S`` has its
pool killed and is labelled ``"timeout"``. vstar's checker then reads every row, strict
and flexible; each row where either disagrees with math-verify (or math-verify timed
out) needs a person's label. ``--hand-labels`` is a JSON Lines file of
``{"id", "label", "reason"}`` written by the person who read those rows; rows of the
existing ``--out`` file that were hand-checked keep their label. Rows still waiting for
a hand label are written to ``--review`` and the script exits 1 without writing ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
from pathlib import Path

from vstar.checkers.math_pool import MathCheckPool

REPO = Path(__file__).resolve().parents[1]
HARD_TIMEOUT_S = 30.0
KEPT_FIELDS = ("id", "style", "decoding", "problem_id", "gold", "completion", "tokens", "finished")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _math_verify_one(pair: tuple[str, str]) -> bool | str:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    gold, completion = pair
    try:
        return bool(verify(parse(f"${gold}$"), parse(completion)))
    except Exception as error:  # math-verify's timeouts raise; so may odd input
        return f"error: {type(error).__name__}"


def math_verify_labels(pairs: list[tuple[str, str]], workers: int = 2) -> list[bool | str]:
    """math-verify's verdict per (gold, completion), each under a hard timeout: a pool with a row
    that overruns is killed, the row labelled ``"timeout"``, and the unfinished rows go to a new pool."""
    context = multiprocessing.get_context("spawn")
    results: list[bool | str | None] = [None] * len(pairs)
    todo = list(range(len(pairs)))
    while todo:
        pool = context.Pool(workers)
        try:
            jobs = [(index, pool.apply_async(_math_verify_one, (pairs[index],))) for index in todo]
            todo = []
            for position, (index, job) in enumerate(jobs):
                try:
                    results[index] = job.get(timeout=HARD_TIMEOUT_S)
                except multiprocessing.TimeoutError:
                    results[index] = "timeout"
                    for later, later_job in jobs[position + 1 :]:
                        if later_job.ready():
                            results[later] = later_job.get()
                        else:
                            todo.append(later)
                    break
        finally:
            pool.terminate()
    return results  # type: ignore[return-value]


def vstar_labels(golds: list[str], completions: list[str], mode: str) -> list[bool]:
    with MathCheckPool(workers=2, extraction=mode) as pool:
        return [verdict.correct for verdict in pool.check_many(golds, completions)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=REPO / "runs" / "math_outputs" / "raw.jsonl")
    parser.add_argument("--hand-labels", type=Path, default=REPO / "scripts" / "math_outputs_hand_labels.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "math_outputs_smollm2.jsonl")
    parser.add_argument("--review", type=Path, default=REPO / "runs" / "math_outputs" / "review.txt")
    args = parser.parse_args()

    rows = sorted(read_jsonl(args.raw), key=lambda row: row["id"])
    hand = {row["id"]: row for row in read_jsonl(args.out) if row.get("labelled_by") == "hand"}
    hand.update({row["id"]: row for row in read_jsonl(args.hand_labels)} if args.hand_labels else {})
    golds = [row["gold"] for row in rows]
    completions = [row["completion"] for row in rows]
    verified = math_verify_labels(list(zip(golds, completions)))
    strict = vstar_labels(golds, completions, "strict")
    flexible = vstar_labels(golds, completions, "flexible")

    labelled, waiting = [], []
    for row, by_math_verify, by_strict, by_flexible in zip(rows, verified, strict, flexible):
        record = {key: row[key] for key in KEPT_FIELDS}
        record["model"] = "SmolLM2-135M-Instruct"
        record["math_verify"] = by_math_verify
        disputed = not isinstance(by_math_verify, bool) or by_strict != by_math_verify or by_flexible != by_math_verify
        if row["id"] in hand:
            record.update(label=bool(hand[row["id"]]["label"]), labelled_by="hand", reason=hand[row["id"]]["reason"])
        elif disputed:
            waiting.append((record, by_strict, by_flexible))
            continue
        else:
            record.update(label=by_math_verify, labelled_by="math-verify")
        labelled.append(record)

    print(f"{len(rows)} rows: math-verify correct {sum(v is True for v in verified)}, "
          f"strict {sum(strict)}, flexible {sum(flexible)}, hand-labelled {sum(r['labelled_by'] == 'hand' for r in labelled)}, "
          f"waiting for a hand label {len(waiting)}")
    if waiting:
        args.review.parent.mkdir(parents=True, exist_ok=True)
        with args.review.open("w", encoding="utf-8") as review:
            for record, by_strict, by_flexible in waiting:
                review.write(f"=== {record['id']} gold={record['gold']!r} math_verify={record['math_verify']} "
                             f"strict={by_strict} flexible={by_flexible}\n{record['completion']}\n\n")
        print(f"read them in {args.review}, write their labels to a --hand-labels file, run again")
        sys.exit(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in labelled), encoding="utf-8")
    print(f"wrote {len(labelled)} rows to {args.out}")


if __name__ == "__main__":
    main()
