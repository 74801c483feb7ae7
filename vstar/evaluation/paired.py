"""Paired comparisons of two selection rules on the same problems: the mean difference
A - B with a percentile bootstrap interval, and a verdict from that interval.

Both rules are judged on the same resampled problems (the same indices for A and B),
so what a problem contributes to both cancels: the interval of the difference is much
narrower than two overlapping intervals suggest, and two intervals that overlap do not
mean "no difference". Only an interval of the difference that excludes 0 says that one
rule is better.

Pooling over seeds (``pooled_paired_difference``): each seed gives per-problem values for
A and B on its own test candidates. Per problem, the difference A - B is averaged over
the seeds, then problems are resampled (only the problems every seed evaluated). This
is chosen over resampling seeds because a handful of seeds cannot be resampled
meaningfully; the interval is the uncertainty from the choice of test problems for the
average over these seeds' runs (a seed's training randomness enters through its
per-problem values, not as a separate level). Report the spread across seeds next to it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from vstar.evaluation.bootstrap import BootstrapInputError, bootstrap_ci

A_BETTER, B_BETTER, NO_DIFFERENCE = "A better", "B better", "no significant difference"


def verdict(lo: float, hi: float) -> str:
    """'A better' when the interval of A - B lies above 0, 'B better' below, otherwise
    'no significant difference' (the interval contains 0)."""
    if lo > 0:
        return A_BETTER
    if hi < 0:
        return B_BETTER
    return NO_DIFFERENCE


def paired_difference(
    values_a: Sequence[float] | np.ndarray,
    values_b: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Mean of A - B over problems (``values_a[i]`` and ``values_b[i]``: the same problem)
    with a (1 - alpha) percentile bootstrap interval from resampling problems, the same
    indices for A and B. Returns ``{"diff", "lo", "hi", "n_problems", "verdict"}``."""
    a = np.asarray(values_a, dtype=float).reshape(-1)
    b = np.asarray(values_b, dtype=float).reshape(-1)
    if len(a) != len(b):
        raise BootstrapInputError(f"paired_difference: {len(a)} values for A but {len(b)} for B (one per problem)")
    diff, lo, hi = bootstrap_ci(a - b, n_boot=n_boot, alpha=alpha, seed=seed)
    return {"diff": diff, "lo": lo, "hi": hi, "n_problems": len(a), "verdict": verdict(lo, hi)}


def pooled_paired_difference(
    values_a: Sequence[Mapping[str, float]],
    values_b: Sequence[Mapping[str, float]],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """A - B pooled over seeds: ``values_a[s]`` maps problem id -> A's value in seed s
    (likewise B). Per problem the difference is averaged over seeds, then problems are
    resampled (module docstring); only problems present in every seed for both count.
    Returns ``paired_difference``'s dict plus ``n_seeds``."""
    if len(values_a) != len(values_b) or not values_a:
        raise BootstrapInputError(
            f"pooled_paired_difference: need the same number (>= 1) of seeds for A and B, got {len(values_a)} and {len(values_b)}")
    shared = set.intersection(*(set(m) for m in [*values_a, *values_b]))
    if not shared:
        raise BootstrapInputError("pooled_paired_difference: no problem is evaluated in every seed for both A and B")
    ids = sorted(shared)
    a = np.mean([[seed_values[i] for i in ids] for seed_values in values_a], axis=0)
    b = np.mean([[seed_values[i] for i in ids] for seed_values in values_b], axis=0)
    return {**paired_difference(a, b, n_boot=n_boot, alpha=alpha, seed=seed), "n_seeds": len(values_a)}
