"""Per-problem estimators: pass@k, Best-of-k, maj@k and the verifier-weighted vote.

Every function takes the N candidates sampled for ONE problem and returns a float in
[0, 1]: the expected value of the metric when k of the N candidates are drawn
uniformly at random without replacement (all C(N, k) subsets equally likely). None of
them looks at "the first k samples".

- ``pass_at_k``: probability that at least one of the k is correct (Chen et al. 2021).
- ``best_of_k``: correctness of the best-scored candidate of the k (the V-STaR paper's
  estimator); candidates with equal scores are ranked in a uniformly random order.
- ``majority_at_k``: the most frequent answer among the k wins (ties between answers
  broken uniformly at random; a candidate with answer None never votes), and the vote
  returns a uniformly random one of the k candidates with that answer: its correctness
  is the credit. Exact (see ``vstar/evaluation/voting.py``).
- ``weighted_majority_at_k``: each candidate votes with a weight derived from its
  verifier score (``score_weights``); the vote returns the highest-scored of the k
  candidates with the winning answer. Exact by enumeration when C(N, k) is small,
  otherwise a Monte-Carlo average over random subsets.

Every selection rule is credited with the candidate it returns, judged by ``correct``:
a vote whose winning answer is right but whose returned candidate is a wrong solution
scores 0. A task's ``answer_correct`` (is the answer itself right) is not used by any of
them. When ``correct`` is the same for all candidates with the same answer (GSM8K,
MATH: a right answer is a right solution) the votes equal answer-level credit exactly.

Bad input raises ``EstimatorInputError``, which is both a ``ValueError`` and a
``VstarError``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vstar.errors import VstarError
from vstar.evaluation.voting import exact_majority, subset_vote_mean


class EstimatorInputError(VstarError, ValueError):
    """An estimator got arrays of the wrong length, a bad k, or NaN scores."""


def check_k(n: int, k: int) -> None:
    """Raise unless 1 <= k <= n (k candidates drawn from n)."""
    if int(k) != k or int(n) != n:
        raise EstimatorInputError(f"k and N must be integers, got k={k!r}, N={n!r}")
    if n < 1:
        raise EstimatorInputError("a problem needs at least one candidate (N >= 1), got N=0")
    if not 1 <= k <= n:
        raise EstimatorInputError(f"k must satisfy 1 <= k <= N; got k={k}, N={n}")


def as_fraction_array(values: Sequence[float] | np.ndarray, field: str, n: int | None = None) -> np.ndarray:
    """``values`` (bools or numbers in [0, 1]) as a float array, checked for length ``n``."""
    array = np.asarray(values, dtype=float).reshape(-1)
    if n is not None and len(array) != n:
        raise EstimatorInputError(f"{field}: expected {n} values (one per candidate), got {len(array)}")
    if np.isnan(array).any() or (array < 0).any() or (array > 1).any():
        raise EstimatorInputError(f"{field}: expected booleans or numbers in [0, 1]")
    return array


def as_score_array(scores: Sequence[float] | np.ndarray, field: str = "scores") -> np.ndarray:
    """``scores`` as a float array; NaN is refused (a candidate without a score is a bug upstream)."""
    array = np.asarray(scores, dtype=float).reshape(-1)
    if np.isnan(array).any():
        bad = int(np.flatnonzero(np.isnan(array))[0])
        raise EstimatorInputError(f"{field}: NaN score for candidate {bad}; every candidate needs a score")
    return array


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms a binomial coefficient.
    """
    check_k(n, k)
    if not 0 <= c <= n:
        raise EstimatorInputError(f"pass@k: the number correct must satisfy 0 <= c <= n; got c={c}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=float)))


def top_rank_weights(n: int, k: int) -> np.ndarray:
    """w[i] = C(n-i-1, k-1) / C(n, k): probability that the candidate ranked i (0 = best)
    is the best of a uniformly random k-subset. Sums to 1.

    Uses s[i] = C(n-i, k) / C(n, k) = prod_{j<i} (n-k-j)/(n-j) (a product of factors in
    [0, 1]) and w[i] = s[i] * k / (n - i).
    """
    check_k(n, k)
    ranks = np.arange(n, dtype=float)
    ratios = np.clip((n - k - ranks) / (n - ranks), 0.0, None)
    survival = np.concatenate(([1.0], np.cumprod(ratios)[:-1]))
    return survival * k / (n - ranks)


def tie_group_means(scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` sorted by score (best first), each replaced by the mean over its tie group."""
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    starts = np.empty(len(ranked), dtype=bool)
    starts[0] = True
    starts[1:] = ranked[1:] != ranked[:-1]
    group = np.cumsum(starts) - 1
    means = np.bincount(group, weights=values[order]) / np.bincount(group)
    return means[group]


def best_of_k(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, k: int) -> float:
    """Best-of-k from N >= k scored candidates (higher score = better).

    The paper's estimator is (1/C(N,k)) * sum_i C(N-i-1, k-1) * a_i with a_i the
    correctness of the i-th best candidate. With ties, the order within a group of
    equal scores is uniformly random, so a_i's expectation is the mean correctness of
    the tie group holding rank i; summing the rank weights over a group gives
    P(the best of the subset lies in that group), times the group's mean correctness.
    This equals the expected correctness of the top-scored member of a random k-subset
    with ties at the top broken uniformly at random. Exact; O(N log N).
    """
    score_array = as_score_array(scores)
    n = len(score_array)
    correct_array = as_fraction_array(correct, "correct", n)
    check_k(n, k)
    value = np.dot(top_rank_weights(n, k), tie_group_means(score_array, correct_array))
    return float(np.clip(value, 0.0, 1.0))  # the weights sum to 1 up to rounding


def answer_groups(
    answers: Sequence[object], correct: Sequence[bool] | np.ndarray, field: str = "correct"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group candidates by answer.

    Returns ``(group_of_candidate, counts, group_correct)``: for each candidate the index
    of its distinct answer (-1 for None), each distinct answer's number of candidates,
    and the mean of ``correct`` over its candidates (what maj@k credits a vote won by
    that answer). ``field`` names ``correct`` in error messages.
    """
    n = len(answers)
    correct_array = as_fraction_array(correct, field, n)
    index: dict[object, int] = {}
    group = np.full(n, -1, dtype=np.int64)
    for position, answer in enumerate(answers):
        if answer is not None:
            group[position] = index.setdefault(answer, len(index))
    voted = group >= 0
    counts = np.bincount(group[voted], minlength=len(index))
    sums = np.bincount(group[voted], weights=correct_array[voted], minlength=len(index))
    return group, counts, sums / np.maximum(counts, 1)


def majority_at_k(
    answers: Sequence[object], correct: Sequence[bool] | np.ndarray, k: int, rng: object = None
) -> float:
    """maj@k: expected correctness of the candidate a plurality vote returns from a
    uniformly random k-subset: a uniformly random one of the subset's candidates that
    give the most-voted answer.

    Ties between the most-voted answers get fractional credit (uniform tie-break);
    candidates whose answer is None never vote; a subset with no answer scores 0. By
    symmetry a vote won by answer a is worth the mean of ``correct`` over all of a's
    candidates (``voting`` module docstring). Exact over all C(N, k) subsets via
    generating functions (``voting.exact_majority``), so ``rng`` is unused (accepted for
    symmetry with ``weighted_majority_at_k``). maj@1 is pass@1 when every correct
    candidate has an answer.
    """
    check_k(len(answers), k)
    _, counts, group_correct = answer_groups(answers, correct)
    return exact_majority(counts, group_correct, len(answers), k)


def score_weights(scores: Sequence[float] | np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Vote weights from raw verifier scores (e.g. log-likelihoods, any sign).

    w_i = exp((s_i - max_j s_j) / temperature): proportional to the softmax of the
    problem's candidates' scores, so a score read as a log-probability votes with its
    probability. Weights lie in [0, 1]; the best candidate weighs 1. A candidate with
    score +inf gets weight 1 and every finite one 0; -inf gets 0.
    """
    score_array = as_score_array(scores)
    if not temperature > 0:
        raise EstimatorInputError(f"temperature must be > 0, got {temperature!r}")
    if np.isposinf(score_array).any():
        return np.isposinf(score_array).astype(float)
    top = score_array.max()
    if np.isneginf(top):
        return np.ones_like(score_array)
    return np.exp((score_array - top) / temperature)


def weighted_majority_at_k(
    answers: Sequence[object],
    correct: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    k: int,
    rng: np.random.Generator | None = None,
    max_subsets: int = 10_000,
    n_subsets: int = 1_000,
    temperature: float = 1.0,
) -> float:
    """Verifier-weighted vote over a uniformly random k-subset.

    Each candidate votes for its answer with weight ``score_weights(scores, temperature)``
    (computed over all N candidates of the problem; the common factor does not change a
    vote). The answer with the largest total weight among those present wins; exact ties
    get fractional credit; None answers never vote; a subset without answers scores 0.
    The vote returns the highest-scored of the subset's candidates with the winning
    answer (equal scores share the credit), and is worth that candidate's ``correct``.

    Exact (all subsets enumerated) when C(N, k) <= ``max_subsets`` (k = 1, 2, N-2, N-1, N for
    N = 128). Otherwise the mean over ``n_subsets`` uniformly random k-subsets: a fixed
    pool of independent random subsets, with the candidates relabelled by a permutation
    drawn from ``rng`` (default ``numpy.random.default_rng(0)``; give each problem its own
    for independent errors). Unbiased; the standard error is about the spread of the
    credit divided by sqrt(n_subsets), at most 0.5 / sqrt(1,000) = 0.016 per problem and
    that divided by sqrt(P) for a mean over P problems.
    """
    n = len(answers)
    check_k(n, k)
    score_array = as_score_array(scores)
    if len(score_array) != n:
        raise EstimatorInputError(f"scores: expected {n} values (one per candidate), got {len(score_array)}")
    correct_array = as_fraction_array(correct, "correct", n)
    group, _, _ = answer_groups(answers, correct_array)
    if rng is None:
        rng = np.random.default_rng(0)
    weights = score_weights(score_array, temperature)
    return subset_vote_mean(group, weights, score_array, correct_array, k, rng, max_subsets, n_subsets)
