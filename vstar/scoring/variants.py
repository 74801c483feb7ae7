"""The named scores of a candidate, built from log-likelihood columns.

One place defines them, so the run's metrics (``evaluation.tables``) and a trained verifier at
work (``serve``) rank candidates by the same numbers. Columns, one value per candidate:
``verifier_logp_sum`` (log V(y|x)), ``sft_logp_sum`` (log G_SFT(y|x)), ``generator_logp_sum``
(log G_T(y|x)), ``tokens`` (completion tokens scored, the end token included when finished), and
the baselines' ``orm_prob`` and ``genrm_yes``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

#: what the V-STaR paper scores with: the verifier's log-likelihood log V(y|x)
PAPER_SCORE = "V-STaR"

#: every variant, in the order the metrics list them -> the columns it is computed from
VARIANT_COLUMNS: dict[str, tuple[str, ...]] = {
    "control: G_SFT likelihood": ("sft_logp_sum",),
    "control: generator mean log-prob": ("generator_logp_sum", "tokens"),
    PAPER_SCORE: ("verifier_logp_sum",),
    "V-STaR (mean log-prob)": ("verifier_logp_sum", "tokens"),
    "V-STaR (DPO reward)": ("verifier_logp_sum", "sft_logp_sum"),
    "ORM": ("orm_prob",),
    "GenRM": ("genrm_yes",),
}


def variant_score(name: str, columns: Mapping[str, Sequence[float]], beta: float) -> np.ndarray:
    """The variant ``name`` of each candidate (``columns`` must hold ``VARIANT_COLUMNS[name]``)."""
    get = {key: np.asarray(columns[key], dtype=float) for key in VARIANT_COLUMNS[name]}
    if name == "control: generator mean log-prob":
        return get["generator_logp_sum"] / np.maximum(get["tokens"], 1)
    if name == "V-STaR (mean log-prob)":
        return get["verifier_logp_sum"] / np.maximum(get["tokens"], 1)
    if name == "V-STaR (DPO reward)":
        return beta * (get["verifier_logp_sum"] - get["sft_logp_sum"])
    (only,) = get.values()
    return only


def score_variants(columns: Mapping[str, Sequence[float]], beta: float) -> dict[str, np.ndarray]:
    """Every variant whose columns are present, by name, in ``VARIANT_COLUMNS`` order."""
    return {
        name: variant_score(name, columns, beta)
        for name, needed in VARIANT_COLUMNS.items()
        if all(key in columns for key in needed)
    }
