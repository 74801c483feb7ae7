"""Evaluation: per-problem estimators (pass@k, Best-of-k, maj@k, weighted vote), the
bootstrap over problems, paired comparisons of two rules, and metric tables for the pipeline."""

from vstar.evaluation.bootstrap import bootstrap_ci
from vstar.evaluation.estimators import (
    EstimatorInputError,
    best_of_k,
    majority_at_k,
    pass_at_k,
    score_weights,
    weighted_majority_at_k,
)
from vstar.evaluation.metrics import curve, default_ks, metric_table, prepare_problems
from vstar.evaluation.paired import paired_difference, pooled_paired_difference

__all__ = [
    "EstimatorInputError",
    "best_of_k",
    "bootstrap_ci",
    "curve",
    "default_ks",
    "majority_at_k",
    "metric_table",
    "paired_difference",
    "pass_at_k",
    "pooled_paired_difference",
    "prepare_problems",
    "score_weights",
    "weighted_majority_at_k",
]
