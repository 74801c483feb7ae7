"""Vote-based estimators over k-subsets: exact maj@k, and the weighted vote by subsets.

Every vote is credited with the candidate it returns, as Best-of-k is:

- maj@k returns a uniformly random candidate among the subset's candidates that give the
  winning answer (ties between answers broken uniformly). Which answer wins depends only
  on how many of each answer's candidates the subset holds; given those counts, which of
  answer a's n_a candidates are held is uniform. So the expected credit of a subset won
  by a is the mean of ``correct`` over all of a's candidates, c_a / n_a, however many
  were picked: maj@k = sum_a P(a wins) * c_a / n_a, and the exact algorithm below needs
  only that worth per answer.
- the verifier-weighted vote returns the highest-scored candidate among the subset's
  candidates with the winning answer (equal scores share the credit). That depends on
  which candidates were picked, so ``subset_vote_mean`` credits it subset by subset.

Exact maj@k. Draw the k-subset as independent Bernoulli(p = k/N) picks conditioned on
picking exactly k: every k-subset is then equally likely, so

    maj@k = (sum over pick outcomes with k picks of credit * probability) / P(k picks),

with P(k picks) = Binomial(N, p).pmf(k). The number of picks among answer b's n_b
candidates has the polynomial (in z) sum_y C(n_b, y) p^y q^(n_b-y) z^y. Answer a wins
with x votes when every other answer has at most x; an answer with exactly x ties,
and the winner is drawn uniformly among the t+1 tied answers, worth 1/(t+1) =
integral_0^1 u^t du. So at vote level x every other answer b that can reach x votes
contributes

    G_b(z, u) = sum_{y < x} C(n_b, y) p^y q^(n_b-y) z^y + u C(n_b, x) p^x q^(n_b-x) z^x,

and None candidates and smaller answers contribute an unconstrained binomial. The sum
over winners a of r_a * [a has exactly x] * prod_{b != a} G_b (r_a = c_a / n_a, a's
worth) is the derivative of prod_b G_b along r. maj@k is the z^k coefficient summed over x and
integrated over u with Gauss-Legendre nodes (exact: the integrand is a polynomial in u
of known degree), divided by P(k picks). Every coefficient is a probability (at most 1)
and P(k picks) is about 1/sqrt(2 pi k (1 - k/N)), so nothing overflows for any N and
rounding errors stay near 1e-14 (the tests compare with brute force to 1e-10).

- level x = 1: every answer is h_b + t_b*u*z (0 or 1 picks), a polynomial in y = u*z;
  answers with equal counts form one factor (h + t y)^m;
- levels 2..(second largest count): batched over levels and u nodes;
- higher levels: only the largest answer reaches them; closed form.

Products over answers and the leave-one-out products of the derivative are taken
pointwise at FFT points (prefix and suffix products, no division).

Weighted vote: no such closed form (weights are real numbers, and the returned
candidate depends on the scores of those picked), so ``subset_vote_mean`` enumerates
the subsets when there are few and otherwise averages random ones.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations

import numpy as np

_CHUNK_ELEMENTS = 1 << 20  # at most this many complex numbers per FFT work array (16 MiB)
_BATCH_ELEMENTS = 1 << 13  # below this, batching more levels costs less than another pass
_TIE_TOLERANCE = 1e-12  # vote totals this close (relatively) count as a tie
_TABLE_MAX_N = 1024  # binomial lookup tables up to (N + 1) x (N + 2) floats (8 MiB)


class _Binomial:
    """Binomial probabilities for Bernoulli(p = k/n) picks, 0 < k < n; a lookup table
    of every pmf(m, y) for m, y <= n when n is at most ``_TABLE_MAX_N``."""

    def __init__(self, n: int, k: int) -> None:
        self.n = n
        self.log_p = math.log(k / n)
        self.log_q = math.log1p(-k / n)
        self.log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=float)))))
        self.table = None
        if n <= _TABLE_MAX_N:
            sizes = np.arange(n + 1)
            table = np.zeros((n + 1, n + 2))  # column n + 1 stays 0: "outside [0, m]"
            table[:, : n + 1] = self._formula(sizes[:, None], sizes[None, :])
            self.table = table

    def _formula(self, m: np.ndarray, ys: np.ndarray) -> np.ndarray:
        inside = (ys >= 0) & (ys <= m)
        y = np.where(inside, ys, 0)
        rest = np.where(inside, m - y, 0)
        log = self.log_fact[y + rest] - self.log_fact[y] - self.log_fact[rest] + y * self.log_p + rest * self.log_q
        return np.where(inside, np.exp(log), 0.0)

    def pmf(self, m: np.ndarray | int, ys: np.ndarray | int) -> np.ndarray:
        """P(y of m candidates picked), broadcast over ``m`` and ``ys`` (0 outside [0, m])."""
        m, ys = np.asarray(m), np.asarray(ys)
        if self.table is None:
            return self._formula(m, ys)
        return self.table[m, np.where((ys >= 0) & (ys <= self.n), ys, self.n + 1)]


@lru_cache(maxsize=8)
def _binomial(n: int, k: int) -> _Binomial:
    """A shared (read-only) ``_Binomial`` per (n, k): the pipeline asks for the same pair
    for every problem."""
    return _Binomial(n, k)


@lru_cache(maxsize=64)
def gauss_legendre_01(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights integrating polynomials of degree < 2*n_nodes exactly over [0, 1]."""
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    return (nodes + 1.0) / 2.0, weights / 2.0


def exact_majority(counts: np.ndarray, answer_worth: np.ndarray, n: int, k: int) -> float:
    """maj@k over all k-subsets of n candidates; ``counts[a]`` candidates give answer a,
    and a vote won by a is worth ``answer_worth[a]`` (the mean of ``correct`` over a's
    candidates: see the module docstring); the other n - sum(counts) have no answer."""
    counts = np.asarray(counts, dtype=np.int64)
    correct = np.asarray(answer_worth, dtype=float)
    if len(counts) == 0:
        return 0.0
    if k == n:
        return float(correct[counts == counts.max()].mean())
    # answers with the same count are interchangeable: group them (descending count)
    values, group, sizes = np.unique(-counts, return_inverse=True, return_counts=True)
    values = -values
    worth = np.bincount(group.reshape(-1), weights=correct, minlength=len(values))
    if not worth.any():
        return 0.0
    binomial = _binomial(n, k)
    total = _level_one(binomial, values, sizes, worth, n - int(counts.sum()), k)
    # levels above the largest answer worth anything add nothing
    top = min(k, int(values[worth > 0].max()))
    shared_top = min(top, int(values[0] if sizes[0] > 1 else (values[1] if len(values) > 1 else 0)))
    for first, last in _level_batches(values, sizes, k, shared_top):
        reach = int((values >= first).sum())  # groups whose answers can get `first` votes
        levels = np.arange(first, last + 1)
        total += _shared_levels(binomial, values[:reach], sizes[:reach], worth[:reach], n, k, levels)
    solo = np.arange(max(2, shared_top + 1), top + 1)  # levels only the largest answer reaches
    if len(solo):
        own = binomial.pmf(int(values[0]), solo) * binomial.pmf(n - int(values[0]), k - solo)
        total += worth[0] * float(own.sum())
    return float(np.clip(total / binomial.pmf(n, k), 0.0, 1.0))


def _power(base: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """base[g] ** exponents[g] for each group g (axis 0), skipping the work for 0 and 1."""
    result = np.ones_like(base)
    once = exponents == 1
    result[once] = base[once]
    more = exponents > 1
    if more.any():
        result[more] = base[more] ** exponents[more].reshape((-1,) + (1,) * (base.ndim - 1))
    return result


def _weighted_leave_one_out(base: np.ndarray, sizes: np.ndarray, worth: np.ndarray, lead: np.ndarray) -> np.ndarray:
    """sum_g worth[g] * lead[g] * base[g]^(sizes[g]-1) * prod_{h != g} base[h]^sizes[h]
    (axis 0 indexes groups; ``lead`` broadcasts against ``base``): the derivative of
    prod_g base[g]^sizes[g] when group g's own factor is replaced by ``lead[g]``.
    Groups worth 0 (wrong answers) cost nothing beyond their share of the products."""
    powered = base if (sizes == 1).all() else _power(base, sizes)
    useful = np.flatnonzero(worth)
    total = np.zeros(base.shape[1:], dtype=base.dtype)
    if len(useful) > 2:  # prefix and suffix products: no division, O(groups) passes
        ones = np.ones_like(powered[:1])
        before = np.concatenate((ones, np.cumprod(powered[:-1], axis=0)))
        after = np.concatenate((np.cumprod(powered[:0:-1], axis=0)[::-1], ones))
        others = (before * after)[useful]
    else:
        others = np.stack([np.prod(np.delete(powered, g, axis=0), axis=0) for g in useful]) if len(useful) else None
    for position, g in enumerate(useful):
        own = base[g] ** (sizes[g] - 1) if sizes[g] > 1 else 1.0
        total += worth[g] * (lead[g] if len(lead) > 1 else lead[0]) * own * others[position]
    return total


def _level_one(
    binomial: _Binomial, values: np.ndarray, sizes: np.ndarray, worth: np.ndarray, n_none: int, k: int
) -> float:
    """Unnormalised credit of subsets whose winner has exactly one vote.

    Every answer contributes h + t*u*z (0 or 1 picks), a polynomial in y = u*z: the
    product over groups is (h_g + t_g y)^m_g, evaluated at FFT points, and
    integral u^j du = 1/(j+1) for the y^j coefficient.
    """
    size = 1 << int(sizes.sum()).bit_length()  # > the degree in y
    omega = np.exp(-2j * np.pi * np.arange(size // 2 + 1) / size)
    stay = np.exp(values * binomial.log_q)  # h: no pick
    once = np.exp(np.log(values) + binomial.log_p + (values - 1) * binomial.log_q)  # t: one pick
    base = stay[:, None] + once[:, None] * omega[None, :]
    derivative_hat = _weighted_leave_one_out(base, sizes, worth * once, np.ones(1))
    derivative = np.fft.irfft(derivative_hat, n=size)[:k]
    degrees = np.arange(len(derivative))
    none_picks = binomial.pmf(n_none, k - 1 - degrees)
    return float(np.sum(none_picks * derivative / (degrees + 1)))


def _batch_cost(values: list[int], sizes: list[int], k: int, first: int, last: int) -> int:
    """Complex numbers in the FFT work array of ``_shared_levels`` for levels first..last."""
    n_reach = [sum(m for v, m in zip(values, sizes) if v >= x) for x in range(first, last + 1)]
    n_nodes = min(n_reach[0] - 1, (k - first) // first) // 2 + 1
    size = 1 << max(r * x for r, x in zip(n_reach, range(first, last + 1))).bit_length()
    groups = sum(1 for v in values if v >= first)
    return groups * (last - first + 1) * n_nodes * (size // 2 + 1)


def _level_batches(values: np.ndarray, sizes: np.ndarray, k: int, last: int) -> list[tuple[int, int]]:
    """Split levels 2..last into batches (first, last). A batch grows by whole runs of
    levels that the same answers can reach while its work array stays under the budget;
    a run too big on its own is cut level by level."""
    values, sizes = [int(v) for v in values], [int(m) for m in sizes]
    batches, first = [], 2
    while first <= last:
        run_ends = sorted({min(last, v) for v in values if v >= first})
        stop = first
        for end in run_ends:
            if end == run_ends[0] or _batch_cost(values, sizes, k, first, end) <= _BATCH_ELEMENTS:
                stop = end
            else:
                break
        while stop > first and _batch_cost(values, sizes, k, first, stop) > _CHUNK_ELEMENTS:
            stop = first + (stop - first) // 2
        batches.append((first, stop))
        first = stop + 1
    return batches


def _shared_levels(
    binomial: _Binomial, values: np.ndarray, sizes: np.ndarray, worth: np.ndarray, n: int, k: int, levels: np.ndarray
) -> float:
    """Unnormalised credit of subsets whose winner has x votes, summed over x in
    ``levels``. Group g holds sizes[g] answers with values[g] candidates each (all
    >= levels[0]) and total correctness worth[g]."""
    reaching = values[:, None] >= levels[None, :]  # (groups, levels)
    n_reach = (sizes[:, None] * reaching).sum(axis=0)
    free = n - (values[:, None] * sizes[:, None] * reaching).sum(axis=0)  # cannot tie or win
    size = 1 << int((n_reach * levels).max()).bit_length()  # > the product's degree: no wrap-around
    max_ties = int(np.minimum(n_reach - 1, (k - levels) // levels).max())
    nodes, node_weights = gauss_legendre_01(max_ties // 2 + 1)
    degrees = np.arange(size)
    picks = binomial.pmf(values[:, None], degrees[None, :])  # (groups, degree)
    below = np.where(degrees[None, None, :] < levels[None, :, None], picks[:, None, :], 0.0)
    below = np.where(reaching[:, :, None], below, (degrees == 0)[None, None, :])  # 1 if it cannot reach
    exact = np.where(reaching, binomial.pmf(values[:, None], levels[None, :]), 0.0)
    rotation = np.exp(-2j * np.pi * np.outer(levels, np.arange(size // 2 + 1)) / size)  # FFT of z^x
    exact_hat = (exact[:, :, None] * rotation[None, :, :])[:, :, None, :]  # (groups, levels, 1, freq)
    base = np.fft.rfft(below, axis=-1)[:, :, None, :] + nodes[None, None, :, None] * exact_hat
    derivative_hat = _weighted_leave_one_out(base, sizes, worth, exact_hat)
    derivative = np.fft.irfft(derivative_hat, n=size, axis=-1)[:, :, : k + 1]
    used = np.arange(derivative.shape[-1])
    free_picks = binomial.pmf(free[:, None], k - used[None, :])  # (levels, degree)
    return float(np.einsum("xuj,xj,u->", derivative, free_picks, node_weights))


@lru_cache(maxsize=32)
def subset_pool(n: int, k: int, max_subsets: int, n_subsets: int) -> np.ndarray:
    """k-subsets of range(n) as rows of indices: all of them if there are at most
    ``max_subsets``, else ``n_subsets`` independent uniformly random ones (fixed seed;
    callers relabel the candidates with their own random permutation)."""
    if math.comb(n, k) <= max_subsets:
        if k == 2:
            return np.stack(np.triu_indices(n, 1), axis=1)
        return np.array(list(combinations(range(n), k)), dtype=np.int64).reshape(-1, k)
    keys = np.random.default_rng([n, k, n_subsets]).random((n_subsets, n))
    return np.argpartition(keys, k - 1, axis=1)[:, :k]


def _small_vote_mean(group: np.ndarray, weights: np.ndarray, scores: np.ndarray, correct: np.ndarray, k: int) -> float:
    """``subset_vote_mean`` for k = 1 or 2, exactly, elementwise over candidates or pairs."""
    worth = np.where(group >= 0, correct, 0.0)  # a candidate without an answer is never returned
    if k == 1:
        return float(worth.mean())
    first, second = np.triu_indices(len(group), 1)
    group_a, group_b = group[first], group[second]
    weight_a, weight_b = weights[first], weights[second]
    worth_a, worth_b = worth[first], worth[second]
    both = (worth_a + worth_b) / 2
    # the same answer (or both None, worth 0): the vote returns the higher-scored of the two
    same_credit = np.where(scores[first] > scores[second], worth_a, np.where(scores[second] > scores[first], worth_b, both))
    margin = 1.0 - _TIE_TOLERANCE  # the same tie rule as subset_vote_mean
    a_wins = (group_b < 0) | ((group_a >= 0) & (weight_b < weight_a * margin))
    b_wins = (group_a < 0) | ((group_b >= 0) & (weight_a < weight_b * margin))
    credit = np.where(a_wins, worth_a, np.where(b_wins, worth_b, both))
    return float(np.where(group_a == group_b, same_credit, credit).mean())


def subset_vote_mean(
    group: np.ndarray,
    weights: np.ndarray,
    scores: np.ndarray,
    correct: np.ndarray,
    k: int,
    rng: np.random.Generator,
    max_subsets: int,
    n_subsets: int,
) -> float:
    """Mean credit of a weighted vote over k-subsets of the candidates.

    ``group[i]`` is candidate i's answer index (-1: no answer, never votes), ``weights[i]``
    its vote, ``scores[i]`` its rank and ``correct[i]`` its correctness. In each subset the
    answer with the largest total weight wins (answers within a relative 1e-12 tie and
    share the credit); the vote returns the highest-scored of the subset's candidates with
    that answer (equal scores share the credit) and is worth that candidate's ``correct``.
    A subset without answers is worth 0. Equal scores make it plain maj@k's credit.
    All subsets when C(N, k) <= ``max_subsets``, else ``n_subsets`` random ones: a fixed
    pool of random subsets, relabelled by a permutation of the candidates drawn from
    ``rng`` (so each subset is uniform, and problems with their own ``rng`` get
    independent draws).
    """
    n = len(group)
    if n == 0 or group.max() < 0:
        return 0.0
    if k <= 2 and math.comb(n, k) <= max_subsets:
        return _small_vote_mean(group, weights, scores, correct, k)
    n_groups = int(group.max()) + 1
    pool = subset_pool(n, k, max_subsets, n_subsets)
    ballot = np.where(group >= 0, group, n_groups)  # column n_groups: "no answer", never wins
    if math.comb(n, k) > max_subsets:
        relabel = rng.permutation(n)
        ballot, weights, scores, correct = ballot[relabel], weights[relabel], scores[relabel], correct[relabel]
    columns = n_groups + 1
    cell = (ballot[pool] + (columns * np.arange(len(pool)))[:, None]).reshape(-1)  # (subset, answer) cells
    shape = (len(pool), columns)
    weight_sum = np.bincount(cell, weights=weights[pool].reshape(-1), minlength=shape[0] * columns)
    present = np.bincount(cell, minlength=shape[0] * columns).reshape(shape)[:, :n_groups] > 0
    weight_sum = weight_sum.reshape(shape)[:, :n_groups]
    best = np.where(present, weight_sum, -np.inf).max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        tied = present & (weight_sum >= best - _TIE_TOLERANCE * np.abs(best))
    returned = _top_scored_mean(cell, scores[pool].reshape(-1), correct[pool].reshape(-1), shape[0] * columns)
    credit = (tied * returned.reshape(shape)[:, :n_groups]).sum(axis=1) / np.maximum(tied.sum(axis=1), 1)
    return float(credit.mean())


def _top_scored_mean(cell: np.ndarray, scores: np.ndarray, correct: np.ndarray, n_cells: int) -> np.ndarray:
    """For each cell, the mean of ``correct`` over its members with the cell's highest score."""
    top = np.full(n_cells, -np.inf)
    np.maximum.at(top, cell, scores)
    at_top = (scores == top[cell]).astype(float)
    total = np.bincount(cell, weights=correct * at_top, minlength=n_cells)
    return total / np.maximum(np.bincount(cell, weights=at_top, minlength=n_cells), 1.0)
