"""Metrics of a run's evaluation: curves over k with 95% bootstrap intervals, and the summary table."""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

import numpy as np

from vstar.config import Config
from vstar.evaluation.bootstrap import bootstrap_ci
from vstar.evaluation.estimators import best_of_k, majority_at_k, pass_at_k, weighted_majority_at_k

PerProblem = dict[str, np.ndarray]


def group_by_problem(candidates: list[dict], labels: list[dict], scores: list[dict]) -> dict[str, dict[str, PerProblem]]:
    """source -> problem_id -> arrays (correct, answers, answer_correct, score columns), in sample order."""
    score_of = {(s["problem_id"], s["sample_index"]): s for s in scores}
    rows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for cand, lab in zip(candidates, labels):
        key = (cand["problem_id"], cand["sample_index"])
        rows[cand["source"]][cand["problem_id"]].append((cand, lab, score_of.get(key) if cand["source"] == "final" else None))
    grouped: dict[str, dict[str, PerProblem]] = {}
    for source, problems in rows.items():
        grouped[source] = {}
        for pid, items in problems.items():
            arrays: PerProblem = {
                "correct": np.array([lab["correct"] for _, lab, _ in items], dtype=float),
                "answers": [lab["answer"] for _, lab, _ in items],
                "answer_correct": np.array([lab["answer_correct"] for _, lab, _ in items], dtype=float),
            }
            if items[0][2] is not None:
                for column in items[0][2]:
                    if column not in ("problem_id", "sample_index"):
                        arrays[column] = np.array([s[column] for _, _, s in items], dtype=float)
            grouped[source][pid] = arrays
    return grouped


def score_variants(beta: float) -> dict[str, Callable[[PerProblem], np.ndarray]]:
    """Named ways to rank G_T's candidates: the verifier's scores and the no-verifier controls."""
    variants = {
        "V-STaR": lambda a: a["verifier_logp_sum"],  # the paper's score: log V(y|x)
        "V-STaR (mean log-prob)": lambda a: a["verifier_logp_sum"] / np.maximum(a["tokens"], 1),
        "V-STaR (DPO reward)": lambda a: beta * (a["verifier_logp_sum"] - a["sft_logp_sum"]),
        "control: G_SFT likelihood": lambda a: a["sft_logp_sum"],
        "control: generator mean log-prob": lambda a: a["generator_logp_sum"] / np.maximum(a["tokens"], 1),
    }
    return variants


def _curve(per_problem: Callable[[PerProblem, int], float], problems: dict[str, PerProblem], ks: list[int], config: Config) -> dict:
    out = {}
    for k in ks:
        values = np.array([per_problem(arrays, k) for arrays in problems.values()])
        mean, lo, hi = bootstrap_ci(values, n_boot=config.eval.bootstrap, seed=config.run.seed)
        out[str(k)] = {"mean": float(mean), "lo": float(lo), "hi": float(hi)}
    return out


def default_ks(n: int) -> list[int]:
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks


def compute_metrics(candidates: list[dict], labels: list[dict], scores: list[dict], config: Config) -> dict:
    n = config.eval.n_candidates
    ks = sorted(set(config.eval.ks)) if config.eval.ks else default_ks(n)
    grouped = group_by_problem(candidates, labels, scores)
    curves: dict[str, dict] = {}

    def pass_fn(a: PerProblem, k: int) -> float:
        return pass_at_k(len(a["correct"]), int(a["correct"].sum()), k)

    def maj_fn(a: PerProblem, k: int) -> float:
        return majority_at_k(a["answers"], a["answer_correct"], k)

    has_answers = any(ans is not None for arrays in grouped["final"].values() for ans in arrays["answers"])
    for source, name in (("sft", "SFT"), ("final", "STaR†")):
        curves[f"{name} pass@k"] = _curve(pass_fn, grouped[source], ks, config)
        if has_answers:
            curves[f"{name} maj@k"] = _curve(maj_fn, grouped[source], ks, config)
    final = grouped["final"]
    if "verifier_logp_sum" in next(iter(final.values())):
        for name, score in score_variants(config.verifier.beta).items():
            curves[f"{name} best-of-k"] = _curve(lambda a, k, s=score: best_of_k(s(a), a["correct"], k), final, ks, config)
        if has_answers:
            rng = np.random.default_rng(config.run.seed)
            curves["V-STaR weighted vote"] = _curve(
                lambda a, k: weighted_majority_at_k(a["answers"], a["answer_correct"], a["verifier_logp_sum"], k, rng=rng),
                final, ks, config,
            )
    return {
        "n_problems": len(final),
        "n_candidates": n,
        "ks": ks,
        "curves": curves,
        "table": summary_table(curves, config.eval.table_k),
    }


def summary_table(curves: dict, table_k: int) -> list[dict]:
    """Rows (method, metric, value with CI) at k=1 and k=table_k, as in the paper's tables."""
    rows = []
    wanted = [
        ("SFT", "SFT pass@k", 1),
        ("STaR†", "STaR† pass@k", 1),
        ("SFT", "SFT maj@k", table_k),
        ("STaR†", "STaR† maj@k", table_k),
        ("V-STaR", "V-STaR best-of-k", 1),
        ("V-STaR", "V-STaR best-of-k", table_k),
        ("V-STaR (mean log-prob)", "V-STaR (mean log-prob) best-of-k", table_k),
        ("V-STaR (DPO reward)", "V-STaR (DPO reward) best-of-k", table_k),
        ("V-STaR weighted vote", "V-STaR weighted vote", table_k),
        ("control: G_SFT likelihood", "control: G_SFT likelihood best-of-k", table_k),
        ("control: generator mean log-prob", "control: generator mean log-prob best-of-k", table_k),
        ("oracle (STaR† pass@k)", "STaR† pass@k", table_k),
    ]
    for method, curve, k in wanted:
        if curve in curves and str(k) in curves[curve]:
            metric = curve.split(" ")[-1].replace("k", str(k)) if "@k" in curve else f"best-of-{k}"
            if curve.endswith("weighted vote"):
                metric = f"weighted maj@{k}"
            rows.append({"method": method, "metric": metric, "k": k, **curves[curve][str(k)]})
    return rows
