"""Per-iteration monitors of self-improvement (B-STaR's warning signs: exploration and
reward discrimination collapsing), computed from a run directory's labeled samples."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from vstar.evaluation.estimators import pass_at_k
from vstar.rundir import RunDir, iter_jsonl


def iteration_monitor(samples_file: Path, labels_file: Path, ks: tuple[int, ...] = (1, 4, 16)) -> dict:
    """pass@k on the training queries, distinct correct solutions per problem, and the share of
    problems with both a correct and an incorrect sample (the ones that give DPO pairs)."""
    correct_texts: dict[str, set] = defaultdict(set)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # [samples, correct]
    tokens = 0
    for sample, label in zip(iter_jsonl(samples_file), iter_jsonl(labels_file)):
        pid = sample["problem_id"]
        counts[pid][0] += 1
        tokens += sample.get("num_tokens", 0)
        if label["correct"]:
            counts[pid][1] += 1
            correct_texts[pid].add(sample["completion"])
    if not counts:
        return {}
    n_samples = min(n for n, _ in counts.values())
    monitor = {
        "problems": len(counts),
        "samples": sum(n for n, _ in counts.values()),
        "tokens_sampled": tokens,
        "accuracy": sum(c for _, c in counts.values()) / sum(n for n, _ in counts.values()),
        "distinct_correct_per_problem": float(np.mean([len(correct_texts[p]) for p in counts])),
        "share_with_pairs": float(np.mean([0 < c < n for n, c in counts.values()])),
        "share_solved": float(np.mean([c > 0 for _, c in counts.values()])),
    }
    for k in ks:
        if k <= n_samples:
            monitor[f"pass@{k}"] = float(np.mean([pass_at_k(n, c, k) for n, c in counts.values()]))
    return monitor


def run_monitors(run_dir: Path) -> list[dict]:
    """One monitor per completed iteration of the run, in order."""
    run = RunDir(run_dir)
    monitors = []
    t = 1
    while (run.iteration(t) / "labels.jsonl").exists():
        folder = run.iteration(t)
        monitors.append({"iteration": t, **iteration_monitor(folder / "samples.jsonl", folder / "labels.jsonl")})
        t += 1
    return monitors
