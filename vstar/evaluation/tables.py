"""A run's evaluation metrics: curves over k with 95% bootstrap intervals, the summary table,
and paired comparisons of the key selection rules."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from vstar.config import Config
from vstar.evaluation.comparisons import key_comparisons, per_problem_section
from vstar.evaluation.metrics import (
    PreparedProblem,
    best_of_k_fn,
    curve_values,
    default_ks,
    majority_of,
    pass_at_k_of,
    prepare_problems,
    summarize,
    weighted_majority_fn,
)
from vstar.scoring.variants import PAPER_SCORE, score_variants

#: bump whenever a change to the metrics code changes a number in metrics.json: a run whose
#: metrics.json records an older version is recomputed from its saved candidates, labels and
#: scores by ``vstar report`` (``metrics_files.refresh_metrics``); none = version 1
METRICS_VERSION = 2


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


def configured_ks(config: Config) -> list[int]:
    """eval.ks, sorted, or 1, 2, 4, ... up to eval.n_candidates."""
    return sorted(set(config.eval.ks)) if config.eval.ks else default_ks(config.eval.n_candidates)


def selection_rules(by_source: dict[str, list[PreparedProblem]], seed: int) -> dict[str, tuple]:
    """Curve name -> (per-problem function, problems): SFT's and G_T's pass@k and maj@k
    (where candidates give answers), Best-of-k for every ranking, the weighted vote."""
    final = by_source["final"]
    has_answers = any((p.group >= 0).any() for p in final)
    rules: dict[str, tuple] = {}
    for source, name in (("sft", "SFT"), ("final", "STaR†")):
        rules[f"{name} pass@k"] = (pass_at_k_of, by_source[source])
        if has_answers:
            rules[f"{name} maj@k"] = (majority_of, by_source[source])
    for score_name in final[0].scores:
        rules[f"{score_name} best-of-k"] = (best_of_k_fn(score_name), final)
    if has_answers and PAPER_SCORE in final[0].scores:
        rules["V-STaR weighted vote"] = (weighted_majority_fn(PAPER_SCORE, seed=seed), final)
    return rules


def evaluate_rules(rules: dict[str, tuple], config: Config) -> tuple[dict, dict]:
    """Each rule's curve over the configured ks (``{str(k): {"mean", "lo", "hi"}}``) and its
    per-problem values at eval.table_k (``{problem id: value}``)."""
    ks = configured_ks(config)
    table_k = config.eval.table_k
    curves, values = {}, {}
    for name, (per_problem_fn, problems) in rules.items():
        extra = [table_k] if table_k not in ks and table_k <= min(p.n for p in problems) else []
        by_k = curve_values(per_problem_fn, problems, ks + extra)
        points = summarize({k: by_k[k] for k in ks}, n_boot=config.eval.bootstrap, seed=config.run.seed)
        curves[name] = {str(k): point for k, point in points.items()}
        if table_k in by_k:
            values[name] = {p.problem_id: float(v) for p, v in zip(problems, by_k[table_k])}
    return curves, values


def rft_results(candidates: list[dict], labels: list[dict], scores: list[dict], config: Config) -> tuple[dict, dict]:
    """RFT's pass@k and V-STaR[1 iter]'s Best-of-k, from G_RFT's candidates scored by V[1 iter]:
    their curves and their per-problem values at eval.table_k (see ``evaluate_rules``)."""
    final = problems_by_source(candidates, labels, scores, config.verifier.beta)["final"]
    rules = {"RFT pass@k": (pass_at_k_of, final)}
    if PAPER_SCORE in final[0].scores:
        rules["V-STaR[1 iter] best-of-k"] = (best_of_k_fn(PAPER_SCORE), final)
    return evaluate_rules(rules, config)


def rft_curves(candidates: list[dict], labels: list[dict], scores: list[dict], config: Config) -> dict:
    """RFT's pass@k and V-STaR[1 iter]'s Best-of-k curves (``rft_results``)."""
    return rft_results(candidates, labels, scores, config)[0]


def answer_diagnostics(by_source: dict[str, list[PreparedProblem]]) -> dict:
    """Per candidate source, the share of candidates that are correct and, where labels
    carry ``answer_correct``, the share with a right answer and the share with a right
    answer but a wrong solution (which every selection rule credits 0)."""
    out = {}
    for source, problems in by_source.items():
        correct = np.concatenate([p.correct for p in problems])
        row = {"candidates": len(correct), "correct": float(correct.mean())}
        if all(p.answer_correct is not None for p in problems):
            answer = np.concatenate([p.answer_correct for p in problems])
            row["answer_correct"] = float(answer.mean())
            row["right_answer_wrong_solution"] = float(np.mean((answer == 1.0) & (correct < 1.0)))
        out[source] = row
    return out


def compute_metrics(candidates: list[dict], labels: list[dict], scores: list[dict], config: Config,
                    extra_curves: dict | None = None, extra_values: dict | None = None) -> dict:
    """metrics.json's content: curves, the summary table, the key paired comparisons at
    eval.table_k, the per-problem values they use, and the answer diagnostics.
    ``extra_curves`` / ``extra_values``: the baselines' curves and per-problem values."""
    by_source = problems_by_source(candidates, labels, scores, config.verifier.beta)
    curves, values = evaluate_rules(selection_rules(by_source, config.run.seed), config)
    curves.update(extra_curves or {})
    values.update(extra_values or {})
    table_k = config.eval.table_k
    final = by_source["final"]
    return {
        "metrics_version": METRICS_VERSION,
        "n_problems": len(final),
        "n_candidates": config.eval.n_candidates,
        "ks": configured_ks(config),
        "curves": curves,
        "table": summary_table(curves, table_k),
        "comparisons": key_comparisons(values, table_k, n_boot=config.eval.bootstrap, seed=config.run.seed),
        "per_problem": per_problem_section(values, [p.problem_id for p in final], table_k),
        "diagnostics": answer_diagnostics(by_source),
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
