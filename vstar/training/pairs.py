"""DPO pairs from D_VER: for each problem, correct x incorrect completions."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Iterable


def build_pairs(labeled: Iterable[dict], cap: int, seed: int) -> tuple[list[dict], dict]:
    """Pairs ``{problem_id, prompt, chosen, rejected}`` and counts.

    ``labeled`` holds ``{problem_id, prompt, completion, correct[, finished]}`` records
    (gold solutions count as correct). Identical completions are merged first, so a
    pair never repeats; if a problem has more than ``cap`` pairs, ``cap`` of them
    are drawn at random (seeded). Each side's ``finished`` flag (did the completion end
    with the end token?) travels with the pair as ``chosen_finished``/``rejected_finished``,
    so DPO trains on the sequence that scoring scores.
    """
    correct: dict[str, dict[str, bool]] = defaultdict(dict)
    incorrect: dict[str, dict[str, bool]] = defaultdict(dict)
    prompts: dict[str, str] = {}
    for record in labeled:
        pid = record["problem_id"]
        prompts[pid] = record["prompt"]
        (correct if record["correct"] else incorrect)[pid].setdefault(record["completion"], record.get("finished", True))
    rng = random.Random(seed)
    pairs: list[dict] = []
    total_before_cap = 0
    problems_with_pairs = 0
    for pid in sorted(prompts):
        good, bad = list(correct[pid]), list(incorrect[pid])
        n = len(good) * len(bad)
        if n == 0:
            continue
        problems_with_pairs += 1
        total_before_cap += n
        chosen_index = range(n) if n <= cap else sorted(rng.sample(range(n), cap))
        for flat in chosen_index:
            g, b = divmod(flat, len(bad))
            pairs.append({"problem_id": pid, "prompt": prompts[pid], "chosen": good[g], "rejected": bad[b],
                          "chosen_finished": correct[pid][good[g]], "rejected_finished": incorrect[pid][bad[b]]})
    counts = {
        "problems": len(prompts),
        "problems_with_pairs": problems_with_pairs,
        "pairs_before_cap": total_before_cap,
        "pairs_total": len(pairs),
        "cap_per_problem": cap,
    }
    return pairs, counts


def split_heldout(pairs: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out the pairs of a random ``fraction`` of problems (whole problems, so no leakage)."""
    problem_ids = sorted({p["problem_id"] for p in pairs})
    rng = random.Random(seed + 1)
    held = set(rng.sample(problem_ids, int(round(fraction * len(problem_ids))))) if fraction > 0 else set()
    train = [p for p in pairs if p["problem_id"] not in held]
    heldout = [p for p in pairs if p["problem_id"] in held]
    return train, heldout
