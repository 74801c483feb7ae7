"""Properties of the estimators on random small problems (hypothesis)."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vstar.evaluation import best_of_k, majority_at_k, pass_at_k, weighted_majority_at_k

SETTINGS = settings(max_examples=60, deadline=None)

LABELS = ["a", "b", "c", "d", None]


@st.composite
def problems(draw, max_n: int = 12):
    """One problem whose answers carry consistent correctness (answer_correct == correct):
    each distinct answer is right or wrong, a missing answer is wrong; scores come
    from a small set so that ties are common."""
    n = draw(st.integers(1, max_n))
    answers = draw(st.lists(st.sampled_from(LABELS), min_size=n, max_size=n))
    right = draw(st.fixed_dictionaries({label: st.booleans() for label in LABELS if label is not None}))
    correct = np.array([answer is not None and right[answer] for answer in answers])
    scores = np.array(draw(st.lists(st.sampled_from([-2.0, -1.0, 0.0, 0.5, 3.0]), min_size=n, max_size=n)))
    return answers, correct, scores


@SETTINGS
@given(problems())
def test_k_equal_one_is_the_mean_correctness_for_every_estimator(problem):
    answers, correct, scores = problem
    mean = correct.mean()
    assert pass_at_k(len(correct), int(correct.sum()), 1) == pytest.approx(mean)
    assert best_of_k(scores, correct, 1) == pytest.approx(mean)
    assert majority_at_k(answers, correct, 1) == pytest.approx(mean)
    assert weighted_majority_at_k(answers, correct, scores, 1) == pytest.approx(mean)


@SETTINGS
@given(problems())
def test_everything_lies_in_unit_interval_and_selection_never_beats_pass_at_k(problem):
    answers, correct, scores = problem
    n, c = len(correct), int(correct.sum())
    for k in range(1, n + 1):
        ceiling = pass_at_k(n, c, k)
        for value in (
            best_of_k(scores, correct, k),
            majority_at_k(answers, correct, k),
            weighted_majority_at_k(answers, correct, scores, k),
        ):
            assert 0.0 <= value <= ceiling + 1e-12
        assert 0.0 <= ceiling <= 1.0


@SETTINGS
@given(st.integers(1, 60), st.data())
def test_pass_at_k_is_non_decreasing_in_k(n, data):
    c = data.draw(st.integers(0, n))
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(later >= earlier - 1e-12 for earlier, later in zip(values, values[1:]))
    assert values[0] == pytest.approx(c / n)


@SETTINGS
@given(problems())
def test_best_of_n_is_the_top_tie_groups_mean(problem):
    _, correct, scores = problem
    top = scores == scores.max()
    assert best_of_k(scores, correct, len(scores)) == pytest.approx(correct[top].mean())


@SETTINGS
@given(problems(), st.randoms(use_true_random=False))
def test_best_of_k_ignores_candidate_order_and_monotone_rescaling(problem, random):
    _, correct, scores = problem
    order = list(range(len(scores)))
    random.shuffle(order)
    for k in range(1, len(scores) + 1):
        value = best_of_k(scores, correct, k)
        assert best_of_k(scores[order], correct[order], k) == pytest.approx(value, abs=1e-12)
        assert best_of_k(np.exp(scores) * 3.0 - 7.0, correct, k) == pytest.approx(value, abs=1e-12)


@SETTINGS
@given(problems())
def test_equal_scores_make_best_of_k_a_random_pick(problem):
    _, correct, _ = problem
    for k in range(1, len(correct) + 1):
        assert best_of_k(np.zeros(len(correct)), correct, k) == pytest.approx(correct.mean())


@SETTINGS
@given(problems())
def test_equal_weights_make_the_weighted_vote_a_plain_vote(problem):
    answers, correct, _ = problem
    for k in range(1, len(correct) + 1):
        plain = majority_at_k(answers, correct, k)
        assert weighted_majority_at_k(answers, correct, np.zeros(len(correct)), k) == pytest.approx(plain, abs=1e-10)


@SETTINGS
@given(st.integers(1, 40), st.booleans(), st.data())
def test_a_single_answer_wins_every_subset(n, right, data):
    n_none = data.draw(st.integers(0, n - 1))
    answers = ["x"] * (n - n_none) + [None] * n_none
    for k in range(1, n + 1):
        # the subset fails only when it holds no answer at all
        expected = (1.0 - (0.0 if k > n_none else _all_none(n, n_none, k))) * right
        assert majority_at_k(answers, [right] * n, k) == pytest.approx(expected, abs=1e-10)


def _all_none(n: int, n_none: int, k: int) -> float:
    """P(a random k-subset of n holds only the n_none None candidates)."""
    return comb(n_none, k) / comb(n, k)
