"""The math checker on real model outputs that vstar did not write (tests/data/math_outputs_smollm2.jsonl).

The rows are SmolLM2-135M-Instruct's answers to GSM8K and MATH-500 problems in several
prompt styles, labelled by math-verify and, wherever vstar's checker and math-verify
disagreed, by a person who read the completion (``labelled_by: "hand"``, with a reason).
See tests/data/README.md for how they were made.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from vstar.checkers.math_extract import DEFAULT_EXTRACTION, EXTRACTION_MODES
from vstar.checkers.math_pool import MathCheckPool

REAL_OUTPUTS = Path(__file__).resolve().parent / "data" / "math_outputs_smollm2.jsonl"
MIN_AGREEMENT = 0.995


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [json.loads(line) for line in REAL_OUTPUTS.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def agreement(rows) -> dict[str, list[dict]]:
    """mode -> the rows whose verdict differs from the label."""
    golds, completions = [row["gold"] for row in rows], [row["completion"] for row in rows]
    differs = {}
    for mode in EXTRACTION_MODES:
        with MathCheckPool(workers=2, extraction=mode) as pool:
            verdicts = pool.check_many(golds, completions)
        differs[mode] = [
            {"id": row["id"], "label": row["label"], "answer": verdict.answer}
            for row, verdict in zip(rows, verdicts) if verdict.correct != row["label"]
        ]
    return differs


def test_the_set_is_real_varied_and_labelled(rows) -> None:
    assert len(rows) >= 800
    assert len({row["id"] for row in rows}) == len(rows)
    styles = Counter(row["style"] for row in rows)
    assert len(styles) >= 5 and min(styles.values()) >= 50, styles
    assert {row["decoding"] for row in rows} == {"greedy", "sampled", "resampled"}
    assert sum(row["label"] for row in rows) >= 20  # SmolLM2-135M is right on a few percent of these
    assert all(isinstance(row["label"], bool) for row in rows)
    hand = [row for row in rows if row["labelled_by"] == "hand"]
    assert hand and all(row["reason"].strip() for row in hand)
    by_math_verify = [row for row in rows if row["labelled_by"] == "math-verify"]
    assert all(row["label"] is row["math_verify"] for row in by_math_verify)


def test_default_extraction_agrees_with_the_labels(rows, agreement) -> None:
    wrong = agreement[DEFAULT_EXTRACTION]
    assert 1 - len(wrong) / len(rows) >= MIN_AGREEMENT, wrong


def test_the_default_is_the_mode_that_agrees_most(agreement) -> None:
    counts = {mode: len(wrong) for mode, wrong in agreement.items()}
    assert counts[DEFAULT_EXTRACTION] == min(counts.values()), counts
