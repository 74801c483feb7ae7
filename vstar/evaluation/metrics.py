"""Table-level metrics: the per-problem estimators over many problems, with bootstrap CIs.

Input, one dict per problem (extra keys such as ``id`` are allowed and ignored):

    correct:        N bools, candidate i is right (passes the check)
    answers:        N normalised final answers (str, or None for "no answer")
    answer_correct: optional N bools, answer i is itself right (a diagnostic: a wrong
                    chain can reach a right answer; no selection rule is scored with it)
    scores:         optional {name: N floats}, verifier scores, higher = better

Every selection rule (Best-of-k, maj@k, the weighted vote) is credited with the
``correct`` of the candidate it returns (see ``estimators``).

Output is plain JSON data: ``{k: {"mean": float, "lo": float, "hi": float}}`` per metric
(``json.dumps`` writes the int keys k as strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from vstar.evaluation.bootstrap import bootstrap_ci
from vstar.evaluation.estimators import (
    EstimatorInputError,
    answer_groups,
    as_fraction_array,
    as_score_array,
    best_of_k,
    pass_at_k,
    score_weights,
)
from vstar.evaluation.voting import exact_majority, subset_vote_mean


@dataclass(frozen=True)
class PreparedProblem:
    """One problem's candidates, checked and converted once for every metric and k."""

    index: int  # position in the input list (seeds the Monte-Carlo draws)
    name: str  # for messages: the problem's ``id`` if it has one
    correct: np.ndarray  # (N,) float 0/1
    group: np.ndarray  # (N,) index of each candidate's distinct answer, -1 for None
    answer_counts: np.ndarray  # (answers,) candidates per distinct answer
    answer_worth: np.ndarray  # (answers,) mean ``correct`` of each answer's candidates
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (N,) float
    problem_id: str = ""  # the input's ``id`` (str), or its position
    answer_correct: np.ndarray | None = None  # (N,) float 0/1, a diagnostic only

    @property
    def n(self) -> int:
        return len(self.correct)


PerProblemFn = Callable[[PreparedProblem, int], float]


def prepare_problem(problem: Mapping[str, Any] | PreparedProblem, index: int) -> PreparedProblem:
    """Check one problem dict (see the module docstring) and convert it to arrays."""
    if isinstance(problem, PreparedProblem):
        return problem
    name = f"problem {index}" + (f" (id {problem['id']!r})" if "id" in problem else "")
    try:
        for key in ("correct", "answers"):
            if key not in problem:
                raise EstimatorInputError(f"missing field {key!r} (expected N values, one per candidate)")
        n = len(problem["answers"])
        if n == 0:
            raise EstimatorInputError("field 'answers': no candidates (expected N >= 1)")
        correct = as_fraction_array(problem["correct"], "field 'correct'", n)
        answer_correct = None
        if problem.get("answer_correct") is not None:
            answer_correct = as_fraction_array(problem["answer_correct"], "field 'answer_correct'", n)
        group, counts, worth = answer_groups(list(problem["answers"]), correct, "field 'correct'")
        scores = {}
        for score_name, values in dict(problem.get("scores") or {}).items():
            field_name = f"field 'scores.{score_name}'"
            scores[score_name] = as_score_array(values, field_name)
            if len(scores[score_name]) != n:
                raise EstimatorInputError(f"{field_name}: expected {n} values, got {len(scores[score_name])}")
    except EstimatorInputError as error:
        raise EstimatorInputError(f"{name}: {error}") from None
    problem_id = str(problem.get("id", index))
    return PreparedProblem(index, name, correct, group, counts, worth, scores, problem_id, answer_correct)


def prepare_problems(problems: Iterable[Mapping[str, Any] | PreparedProblem]) -> list[PreparedProblem]:
    """``prepare_problem`` for each problem, in order."""
    return [prepare_problem(problem, index) for index, problem in enumerate(problems)]


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... (powers of two up to n), then n itself if it is not one of them."""
    if n < 1:
        raise EstimatorInputError(f"default_ks: need n >= 1 candidates, got {n}")
    ks = [1 << power for power in range(int(n).bit_length()) if 1 << power <= n]
    return ks if ks[-1] == n else ks + [int(n)]


def curve(
    per_problem_fn: PerProblemFn,
    problems: Sequence[Mapping[str, Any] | PreparedProblem],
    ks: Iterable[int],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """``{k: {"mean", "lo", "hi"}}``: the mean over problems of
    ``per_problem_fn(problem, k)`` (``problem`` a ``PreparedProblem``) with a percentile
    bootstrap interval over problems (``n_boot`` resamples, ``seed``).
    """
    values = curve_values(per_problem_fn, problems, ks)
    return summarize(values, n_boot=n_boot, alpha=alpha, seed=seed)


def curve_values(
    per_problem_fn: PerProblemFn, problems: Sequence[Mapping[str, Any] | PreparedProblem], ks: Iterable[int]
) -> dict[int, np.ndarray]:
    """``{k: per-problem values}``: ``per_problem_fn(problem, k)`` for every problem, in order."""
    prepared = prepare_problems(problems)
    if not prepared:
        raise EstimatorInputError("curve: no problems to evaluate")
    table = {}
    for k in ks:
        k = int(k)
        for problem in prepared:
            if k > problem.n:
                raise EstimatorInputError(f"{problem.name}: k={k} exceeds its {problem.n} candidates")
        table[k] = np.array([per_problem_fn(problem, k) for problem in prepared], dtype=float)
    return table


def summarize(
    values: Mapping[int, np.ndarray], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> dict[int, dict[str, float]]:
    """``{k: {"mean", "lo", "hi"}}`` from per-problem values (``curve_values``)."""
    table = {}
    for k, per_problem in values.items():
        mean, lo, hi = bootstrap_ci(per_problem, n_boot=n_boot, alpha=alpha, seed=seed)
        table[k] = {"mean": mean, "lo": lo, "hi": hi}
    return table


def pass_at_k_of(problem: PreparedProblem, k: int) -> float:
    """pass@k of one prepared problem; a candidate counts as correct when ``correct`` is 1
    (partial credit, if a task gives any, does not pass)."""
    return pass_at_k(problem.n, int(np.count_nonzero(problem.correct == 1.0)), k)


def majority_of(problem: PreparedProblem, k: int) -> float:
    """Exact maj@k of one prepared problem (credited with the candidate the vote returns)."""
    return exact_majority(problem.answer_counts, problem.answer_worth, problem.n, k)


def _scores(problem: PreparedProblem, score_name: str) -> np.ndarray:
    if score_name not in problem.scores:
        known = ", ".join(sorted(problem.scores)) or "none"
        raise EstimatorInputError(f"{problem.name}: no score named {score_name!r} in field 'scores' (has: {known})")
    return problem.scores[score_name]


def best_of_k_fn(score_name: str) -> PerProblemFn:
    """Per-problem Best-of-k that ranks candidates by ``scores[score_name]``."""

    def best_of(problem: PreparedProblem, k: int) -> float:
        return best_of_k(_scores(problem, score_name), problem.correct, k)

    return best_of


def weighted_majority_fn(
    score_name: str, temperature: float = 1.0, max_subsets: int = 10_000, n_subsets: int = 1_000, seed: int = 0
) -> PerProblemFn:
    """Per-problem verifier-weighted vote with weights exp((s - max s) / temperature)
    from ``scores[score_name]``, returning the highest-scored candidate of the winning
    answer; exact up to ``max_subsets`` subsets, else ``n_subsets`` random ones (see
    ``estimators.weighted_majority_at_k``), drawn with a generator seeded by (seed, k,
    problem index): reproducible, independent across problems."""

    def weighted(problem: PreparedProblem, k: int) -> float:
        scores = _scores(problem, score_name)
        weights = score_weights(scores, temperature)
        rng = np.random.default_rng([seed, k, problem.index])
        return subset_vote_mean(problem.group, weights, scores, problem.correct, k, rng, max_subsets, n_subsets)

    return weighted


def metric_table(
    problems: Sequence[Mapping[str, Any] | PreparedProblem],
    ks: Iterable[int] | None = None,
    score_names: Iterable[str] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    weighted_vote: bool = True,
) -> dict[str, dict[int, dict[str, float]]]:
    """Every metric as a curve over k.

    Keys: ``pass@k``, ``maj@k``, and for each score name ``best_of_k/<name>`` and (if
    ``weighted_vote``) ``weighted_maj@k/<name>``. ``ks`` defaults to ``default_ks`` of
    the smallest N; ``score_names`` to the names every problem has.
    """
    prepared = prepare_problems(problems)
    if not prepared:
        raise EstimatorInputError("metric_table: no problems to evaluate")
    ks = list(ks) if ks is not None else default_ks(min(problem.n for problem in prepared))
    if score_names is None:
        score_names = sorted(set.intersection(*(set(problem.scores) for problem in prepared)))
    settings = {"ks": ks, "n_boot": n_boot, "alpha": alpha, "seed": seed}
    table = {"pass@k": curve(pass_at_k_of, prepared, **settings), "maj@k": curve(majority_of, prepared, **settings)}
    for name in score_names:
        table[f"best_of_k/{name}"] = curve(best_of_k_fn(name), prepared, **settings)
        if weighted_vote:
            table[f"weighted_maj@k/{name}"] = curve(weighted_majority_fn(name, seed=seed), prepared, **settings)
    return table
