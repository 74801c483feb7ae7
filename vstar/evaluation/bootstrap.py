"""Percentile bootstrap over problems: a mean with a confidence interval."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vstar.errors import VstarError


class BootstrapInputError(VstarError, ValueError):
    """``bootstrap_ci`` got no values, NaN values, or a bad setting."""


def bootstrap_ci(
    per_problem_values: Sequence[float] | np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``per_problem_values`` and a (1 - alpha) percentile bootstrap interval.

    Problems are resampled with replacement ``n_boot`` times; ``lo`` and ``hi`` are the
    alpha/2 and 1 - alpha/2 quantiles of the resampled means. The same seed gives the
    same interval. With a single problem the interval is the value itself. The interval
    always holds the mean (clamped in the rare case a skewed resample puts it outside).
    Returns plain floats ``(mean, lo, hi)``.
    """
    values = np.asarray(per_problem_values, dtype=float).reshape(-1)
    if len(values) == 0:
        raise BootstrapInputError("bootstrap_ci: no per-problem values (expected at least one problem)")
    if np.isnan(values).any():
        raise BootstrapInputError(f"bootstrap_ci: NaN value for problem {int(np.flatnonzero(np.isnan(values))[0])}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise BootstrapInputError(f"bootstrap_ci: n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < alpha < 1:
        raise BootstrapInputError(f"bootstrap_ci: alpha must lie in (0, 1), got {alpha!r}")
    mean = float(values.mean())
    if len(values) == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    resampled = np.empty(int(n_boot))
    rows = max(1, (1 << 22) // len(values))  # bound the index array at ~32 MiB
    for start in range(0, int(n_boot), rows):
        stop = min(int(n_boot), start + rows)
        picks = rng.integers(0, len(values), size=(stop - start, len(values)))
        resampled[start:stop] = values[picks].mean(axis=1)
    lo, hi = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return mean, float(min(lo, mean)), float(max(hi, mean))
