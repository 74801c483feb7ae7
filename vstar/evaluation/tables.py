"""A run's evaluation metrics: curves over k with 95% bootstrap intervals, and the summary table."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from vstar.config import Config
from vstar.evaluation.metrics import (
    PreparedProblem,
    best_of_k_fn,
    curve,
    default_ks,
    majority_of,
    pass_at_k_of,
    prepare_problems,
    weighted_majority_fn,
)

#: what the V-STaR paper scores with: the verifier's log-likelihood log V(y|x)
PAPER_SCORE = "V-STaR"


def score_variants(columns: dict[str, np.ndarray], beta: float) -> dict[str, np.ndarray]:
    """Named rankings of G_T's candidates: the verifier's scores and the no-verifier controls."""
    tokens = np.maximum(columns["tokens"], 1)
    variants = {
        "control: G_SFT likelihood": columns["sft_logp_sum"],
        "control: generator mean log-prob": columns["generator_logp_sum"] / tokens,
    }
    if "verifier_logp_sum" in columns:
        variants.update({
            PAPER_SCORE: columns["verifier_logp_sum"],
            "V-STaR (mean log-prob)": columns["verifier_logp_sum"] / tokens,
            "V-STaR (DPO reward)": beta * (columns["verifier_logp_sum"] - columns["sft_logp_sum"]),
        })
    if "orm_prob" in columns:
        variants["ORM"] = columns["orm_prob"]
    if "genrm_yes" in columns:
        variants["GenRM"] = columns["genrm_yes"]
    return variants


def problems_by_source(candidates: list[dict], labels: list[dict], scores: list[dict], beta: float) -> dict[str, list[PreparedProblem]]:
    """source ('final' / 'sft') -> prepared problems, candidates in sample order."""
    score_of = {(s["problem_id"], s["sample_index"]): s for s in scores}
    grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for cand, lab in zip(candidates, labels):
        grouped[cand["source"]][cand["problem_id"]].append((cand, lab))
    prepared = {}
    for source, problems in grouped.items():
        dicts = []
        for pid, items in problems.items():
            problem = {
                "id": pid,
                "correct": [lab["correct"] for _, lab in items],
                "answers": [lab["answer"] for _, lab in items],
                "answer_correct": [lab["answer_correct"] for _, lab in items],
            }
            rows = [score_of.get((c["problem_id"], c["sample_index"])) for c, _ in items]
            if source == "final" and all(rows):
                columns = {name: np.array([r[name] for r in rows], dtype=float) for name in rows[0]
                           if name not in ("problem_id", "sample_index")}
                problem["scores"] = score_variants(columns, beta)
            dicts.append(problem)
        prepared[source] = prepare_problems(dicts)
    return prepared


def merge_scores(*tables: list[dict]) -> list[dict]:
    """Join score records (e.g. scores.jsonl and classifier_scores.jsonl) on (problem_id, sample_index)."""
    merged: dict[tuple, dict] = {}
    for table in tables:
        for row in table:
            merged.setdefault((row["problem_id"], row["sample_index"]), {}).update(row)
    return list(merged.values())


def rft_curves(candidates: list[dict], labels: list[dict], scores: list[dict], config: Config) -> dict:
    """RFT's pass@k and V-STaR[1 iter]'s Best-of-k, from G_RFT's candidates scored by V[1 iter]."""
    ks = sorted(set(config.eval.ks)) if config.eval.ks else default_ks(config.eval.n_candidates)
    final = problems_by_source(candidates, labels, scores, config.verifier.beta)["final"]
    settings = {"ks": ks, "n_boot": config.eval.bootstrap, "seed": config.run.seed}
    curves = {"RFT pass@k": curve(pass_at_k_of, final, **settings)}
    if PAPER_SCORE in final[0].scores:
        curves["V-STaR[1 iter] best-of-k"] = curve(best_of_k_fn(PAPER_SCORE), final, **settings)
    return {name: {str(k): point for k, point in points.items()} for name, points in curves.items()}


def compute_metrics(candidates: list[dict], labels: list[dict], scores: list[dict], config: Config,
                    extra_curves: dict | None = None) -> dict:
    n = config.eval.n_candidates
    ks = sorted(set(config.eval.ks)) if config.eval.ks else default_ks(n)
    by_source = problems_by_source(candidates, labels, scores, config.verifier.beta)
    settings = {"ks": ks, "n_boot": config.eval.bootstrap, "seed": config.run.seed}
    curves: dict[str, dict] = {}
    final = by_source["final"]
    has_answers = any((p.group >= 0).any() for p in final)
    for source, name in (("sft", "SFT"), ("final", "STaR†")):
        curves[f"{name} pass@k"] = curve(pass_at_k_of, by_source[source], **settings)
        if has_answers:
            curves[f"{name} maj@k"] = curve(majority_of, by_source[source], **settings)
    for score_name in final[0].scores:
        curves[f"{score_name} best-of-k"] = curve(best_of_k_fn(score_name), final, **settings)
    if has_answers and PAPER_SCORE in final[0].scores:
        curves["V-STaR weighted vote"] = curve(weighted_majority_fn(PAPER_SCORE, seed=config.run.seed), final, **settings)
    curves = {name: {str(k): point for k, point in points.items()} for name, points in curves.items()}
    curves.update(extra_curves or {})
    return {
        "n_problems": len(final),
        "n_candidates": n,
        "ks": ks,
        "curves": curves,
        "table": summary_table(curves, config.eval.table_k),
    }


def summary_table(curves: dict, table_k: int) -> list[dict]:
    """Rows (method, metric, mean and CI) at k=1 and k=table_k, as in the paper's tables."""
    wanted = [
        ("SFT", "SFT pass@k", 1, "pass@1"),
        ("STaR†", "STaR† pass@k", 1, "pass@1"),
        ("SFT", "SFT maj@k", table_k, f"maj@{table_k}"),
        ("STaR†", "STaR† maj@k", table_k, f"maj@{table_k}"),
        ("V-STaR", "V-STaR best-of-k", 1, "best-of-1"),
        ("V-STaR", "V-STaR best-of-k", table_k, f"best-of-{table_k}"),
        ("V-STaR (mean log-prob)", "V-STaR (mean log-prob) best-of-k", table_k, f"best-of-{table_k}"),
        ("V-STaR (DPO reward)", "V-STaR (DPO reward) best-of-k", table_k, f"best-of-{table_k}"),
        ("V-STaR weighted vote", "V-STaR weighted vote", table_k, f"weighted maj@{table_k}"),
        ("ORM", "ORM best-of-k", table_k, f"best-of-{table_k}"),
        ("GenRM", "GenRM best-of-k", table_k, f"best-of-{table_k}"),
        ("RFT", "RFT pass@k", 1, "pass@1"),
        ("V-STaR[1 iter]", "V-STaR[1 iter] best-of-k", table_k, f"best-of-{table_k}"),
        ("control: G_SFT likelihood", "control: G_SFT likelihood best-of-k", table_k, f"best-of-{table_k}"),
        ("control: generator mean log-prob", "control: generator mean log-prob best-of-k", table_k, f"best-of-{table_k}"),
        ("oracle (STaR† pass@k)", "STaR† pass@k", table_k, f"pass@{table_k}"),
    ]
    return [
        {"method": method, "metric": metric, "k": k, **curves[name][str(k)]}
        for method, name, k, metric in wanted
        if name in curves and str(k) in curves[name]
    ]
