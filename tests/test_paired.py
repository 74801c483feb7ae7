"""Paired bootstrap of differences between two selection rules, pooling over seeds, the
run's key comparisons, and findings worded only from them."""

from __future__ import annotations

import numpy as np
import pytest

from vstar.evaluation import bootstrap_ci
from vstar.evaluation.bootstrap import BootstrapInputError
from vstar.evaluation.comparisons import display_name, key_comparisons, per_problem_section, values_by_problem
from vstar.evaluation.paired import paired_difference, pooled_paired_difference, verdict
from vstar.report import findings


def test_the_same_problems_are_resampled_for_both_rules():
    # B is A minus 0.1 on every problem: every resample of the same problems differs by
    # exactly 0.1, while each rule's own interval is wide and the two overlap
    a = np.random.default_rng(0).random(40)
    b = a - 0.1
    result = paired_difference(a, b, n_boot=500)
    assert result["diff"] == pytest.approx(0.1)
    assert result["lo"] == pytest.approx(0.1) and result["hi"] == pytest.approx(0.1)
    assert result["verdict"] == "A better" and result["n_problems"] == 40
    _, a_lo, a_hi = bootstrap_ci(a, n_boot=500)
    _, b_lo, b_hi = bootstrap_ci(b, n_boot=500)
    assert a_lo < b_hi  # overlapping intervals, yet a clear paired difference


def test_paired_interval_hand_computed_for_two_problems():
    # differences [1, 0]: a resample's mean is 0 (p 1/4), 1/2 (p 1/2) or 1 (p 1/4),
    # so the 2.5% and 97.5% quantiles are 0 and 1: the interval contains 0
    result = paired_difference([1.0, 0.0], [0.0, 0.0], n_boot=4000, seed=1)
    assert (result["diff"], result["lo"], result["hi"]) == (0.5, 0.0, 1.0)
    assert result["verdict"] == "no significant difference"


def test_verdicts():
    assert verdict(0.01, 0.2) == "A better"
    assert verdict(-0.2, -0.01) == "B better"
    assert verdict(-0.1, 0.1) == "no significant difference"
    assert verdict(0.0, 0.1) == "no significant difference"  # 0 lies in the interval
    assert paired_difference([0.5, 0.2, 0.4], [0.1, 0.1, 0.1])["verdict"] == "A better"  # every difference > 0
    assert paired_difference([0.0, 0.0, 0.1], [0.5, 0.3, 0.6])["verdict"] == "B better"
    with pytest.raises(BootstrapInputError, match="3 values for A but 2 for B"):
        paired_difference([0.0, 1.0, 1.0], [0.0, 1.0])


def test_pooled_over_seeds_averages_each_problem_then_resamples_the_shared_ones():
    # p1, p2 are in both seeds; p3 and p4 only in one, so they are left out.
    # Per problem, A - B averaged over the seeds: p1 (1 + 0)/2 = 0.5, p2 (0 + 1)/2 = 0.5
    a = [{"p1": 1.0, "p2": 0.0, "p3": 1.0}, {"p1": 0.0, "p2": 1.0, "p4": 1.0}]
    b = [{"p1": 0.0, "p2": 0.0, "p3": 0.0}, {"p1": 0.0, "p2": 0.0, "p4": 0.0}]
    result = pooled_paired_difference(a, b, n_boot=200)
    assert (result["diff"], result["lo"], result["hi"]) == (0.5, 0.5, 0.5)
    assert result["n_problems"] == 2 and result["n_seeds"] == 2 and result["verdict"] == "A better"
    with pytest.raises(BootstrapInputError, match="no problem"):
        pooled_paired_difference([{"p1": 1.0}], [{"p2": 0.0}])


def test_key_comparisons_pair_by_problem_and_skip_missing_rules():
    values = {
        "V-STaR best-of-k": {"p1": 1.0, "p2": 0.5, "p3": 0.0},
        "STaR† maj@k": {"p3": 0.0, "p1": 0.5, "p2": 0.5},  # other order: paired by id
        "V-STaR weighted vote": {"p1": 1.0, "p2": 1.0, "p3": 1.0},
    }
    rows = key_comparisons(values, 16, n_boot=300)
    assert [(r["a"], r["b"]) for r in rows] == [
        ("V-STaR best-of-16", "STaR† maj@16"),
        ("V-STaR weighted maj@16", "STaR† maj@16"),
        ("V-STaR weighted maj@16", "V-STaR best-of-16"),
    ]
    first = rows[0]  # differences 0.5, 0, 0
    assert first["diff"] == pytest.approx(1 / 6) and first["lo"] == 0.0 and first["n_problems"] == 3
    assert first["verdict"] == "no significant difference" and first["k"] == 16
    assert rows[1]["diff"] == pytest.approx((0.5 + 0.5 + 1.0) / 3) and rows[1]["verdict"] == "A better"
    assert display_name("RFT pass@k", 4) == "RFT pass@4"


def test_per_problem_values_round_trip_for_pooling():
    values = {"V-STaR best-of-k": {"p1": 1.0, "p2": 0.25}, "ORM best-of-k": {"p2": 0.5}}
    section = per_problem_section(values, ["p1", "p2"], 16)
    assert section == {"k": 16, "problem_ids": ["p1", "p2"],
                       "values": {"V-STaR best-of-k": [1.0, 0.25], "ORM best-of-k": [None, 0.5]}}
    metrics = {"per_problem": section}
    assert values_by_problem(metrics, "ORM best-of-k") == {"p2": 0.5}
    assert values_by_problem(metrics, "GenRM best-of-k") == {}


def _comparison(b_curve, diff, lo, hi):
    return {"a": "V-STaR best-of-16", "b": display_name(b_curve, 16), "a_curve": "V-STaR best-of-k",
            "b_curve": b_curve, "k": 16, "diff": diff, "lo": lo, "hi": hi, "n_problems": 200,
            "verdict": verdict(lo, hi)}


def test_findings_claim_a_difference_only_when_the_paired_interval_excludes_zero():
    metrics = {"curves": {}, "comparisons": [
        _comparison("control: G_SFT likelihood best-of-k", 0.014, -0.012, 0.047),
        _comparison("control: generator mean log-prob best-of-k", 0.05, 0.01, 0.09),
        _comparison("STaR† maj@k", -0.06, -0.1, -0.02),
    ]}
    texts = [text for _, text in findings(metrics, 16)]
    assert texts[0] == ("V-STaR best-of-16 minus control: G_SFT likelihood best-of-16: +1.4 points, paired 95% "
                        "interval [-1.2, +4.7] over 200 problems: no significant difference; this run does not "
                        "show that the verifier adds information beyond this control.")
    assert texts[1].endswith("[+1.0, +9.0] over 200 problems: the verifier adds information beyond this control.")
    assert texts[2].endswith(": STaR† maj@16 is better.")
    old = findings({"curves": {"V-STaR best-of-k": {"16": {"mean": 0.4}},
                               "control: G_SFT likelihood best-of-k": {"16": {"mean": 0.3}}}}, 16)
    assert len(old) == 1 and "no difference between methods is claimed" in old[0][1]
    assert not any("better" in text or "adds information" in text for _, text in old)
