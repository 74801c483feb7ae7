"""The run's key comparisons at the table's k, each a paired bootstrap of A - B over the
test problems (``paired``), and the per-problem values they are computed from, as
stored in metrics.json (so that several seeds' runs can be pooled later)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from vstar.evaluation.paired import paired_difference

#: (A, B) curve names: V-STaR's Best-of-k against every rule that could explain it, and
#: the weighted vote against the plain vote. A pair is skipped when a curve is missing.
KEY_COMPARISONS = (
    ("V-STaR best-of-k", "control: G_SFT likelihood best-of-k"),
    ("V-STaR best-of-k", "control: generator mean log-prob best-of-k"),
    ("V-STaR best-of-k", "STaR† maj@k"),
    ("V-STaR best-of-k", "ORM best-of-k"),
    ("V-STaR best-of-k", "GenRM best-of-k"),
    ("V-STaR best-of-k", "V-STaR[1 iter] best-of-k"),
    ("V-STaR best-of-k", "V-STaR (mean log-prob) best-of-k"),
    ("V-STaR best-of-k", "V-STaR (DPO reward) best-of-k"),
    ("V-STaR weighted vote", "STaR† maj@k"),
    ("V-STaR weighted vote", "V-STaR best-of-k"),
)


def display_name(curve: str, k: int) -> str:
    """'V-STaR best-of-k' at k=16 -> 'V-STaR best-of-16'; 'STaR† maj@k' -> 'STaR† maj@16'."""
    if curve == "V-STaR weighted vote":
        curve = "V-STaR weighted maj@k"
    if curve.endswith("-of-k") or curve.endswith("@k"):
        return curve[:-1] + str(k)
    return f"{curve} (k={k})"


def per_problem_section(values: Mapping[str, Mapping[str, float]], problem_ids: list[str], k: int) -> dict:
    """metrics.json's ``per_problem``: each curve's value per problem at k, in the order of
    ``problem_ids`` (None where a curve lacks a problem)."""
    return {
        "k": k,
        "problem_ids": list(problem_ids),
        "values": {name: [by_id.get(pid) for pid in problem_ids] for name, by_id in values.items()},
    }


def values_by_problem(metrics: Mapping, curve: str) -> dict[str, float]:
    """problem id -> value of ``curve`` at the stored k, read back from a metrics.json
    (for pooling several runs' values with ``paired.pooled_paired_difference``)."""
    section = metrics.get("per_problem") or {}
    values = section.get("values", {}).get(curve)
    if values is None:
        return {}
    return {pid: value for pid, value in zip(section["problem_ids"], values) if value is not None}


def key_comparisons(
    values: Mapping[str, Mapping[str, float]], k: int, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> list[dict]:
    """A paired comparison for each of ``KEY_COMPARISONS`` whose curves both have values
    (``values[curve]``: problem id -> value at k), on the problems both evaluated."""
    rows = []
    for curve_a, curve_b in KEY_COMPARISONS:
        if not values.get(curve_a) or not values.get(curve_b):
            continue
        ids = [pid for pid in values[curve_a] if pid in values[curve_b]]
        if not ids:
            continue
        a = np.array([values[curve_a][pid] for pid in ids])
        b = np.array([values[curve_b][pid] for pid in ids])
        result = paired_difference(a, b, n_boot=n_boot, alpha=alpha, seed=seed)
        rows.append({"a": display_name(curve_a, k), "b": display_name(curve_b, k),
                     "a_curve": curve_a, "b_curve": curve_b, "k": k, **result})
    return rows
