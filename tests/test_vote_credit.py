"""Votes are credited with the candidate they return, not with their winning answer:
hand-computed cases where the two differ, brute force over all subsets, maj@1 = pass@1,
and GSM8K labels (a right answer is a right solution) where nothing changes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vstar.evaluation import majority_at_k, pass_at_k, score_weights, weighted_majority_at_k
from vstar.evaluation.estimators import answer_groups
from vstar.evaluation.voting import exact_majority
from vstar.tasks import get_task
from vote_brute_force import brute_vote

SETTINGS = settings(max_examples=80, deadline=None)
GSM8K_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


# ---------------------------------------------------------------- hand-computed


def test_majority_is_credited_with_the_candidate_it_returns():
    # a1 is a correct solution; a2 reaches the same right answer through a wrong chain
    answers, correct, answer_correct = ["a", "a", "b"], [1, 0, 0], [1, 1, 0]
    # k=1: the vote returns the one candidate: 1/3 (= pass@1); the old rule gave 2/3
    assert majority_at_k(answers, correct, 1) == pytest.approx(1 / 3)
    # k=2: {a1,a2} -> a wins, returns a1 or a2: 1/2; {a1,b} tie -> 1/2*1 + 1/2*0 = 1/2;
    # {a2,b} tie -> 0. Mean (1/2 + 1/2 + 0)/3 = 1/3 (old rule: (1 + 1/2 + 1/2)/3 = 2/3)
    assert majority_at_k(answers, correct, 2) == pytest.approx(1 / 3)
    # k=3: a wins 2 to 1 and returns a1 or a2: 1/2 (old rule: 1)
    assert majority_at_k(answers, correct, 3) == pytest.approx(1 / 2)
    assert brute_vote(answers, correct, 2, answer_correct=answer_correct) == pytest.approx(2 / 3)


def test_weighted_vote_returns_the_top_scored_candidate_of_the_winning_answer():
    # answer a: a1 wrong (weight .2), a2 correct (.4), a3 wrong (.4, tied with a2); b wrong (.9)
    answers, correct, answer_correct = ["a", "a", "a", "b"], [0, 1, 0, 0], [1, 1, 1, 0]
    scores = np.log([0.2, 0.4, 0.4, 0.9])  # weights exp(s - max s) are proportional to these
    # k=1: the candidate itself: 1/4 (old rule: 3/4)
    assert weighted_majority_at_k(answers, correct, scores, 1) == pytest.approx(1 / 4)
    # k=2: {a1,a2} -> a2: 1; {a1,a3} -> a3: 0; {a2,a3} -> tie a2/a3: 1/2; {ai,b}: b wins
    # (.9 > .4): 0 three times. Mean 1.5/6 = 1/4 (old rule: 3/6)
    assert weighted_majority_at_k(answers, correct, scores, 2) == pytest.approx(1 / 4)
    # k=3: {a1,a2,a3} -> a2/a3 tie: 1/2; each {ai,aj,b}: at most .8 < .9, b wins: 0. 0.5/4 (old: 1/4)
    assert weighted_majority_at_k(answers, correct, scores, 3) == pytest.approx(1 / 8)
    # k=4: a has 1.0 > .9 and returns a2 or a3: 1/2 (old rule: 1)
    assert weighted_majority_at_k(answers, correct, scores, 4) == pytest.approx(1 / 2)
    # the plain vote on the same candidates: a is worth c_a / n_a = 1/3 whenever it wins
    # k=2: a wins the 3 {ai,aj} and half of the 3 {ai,b}: P = 4.5/6, times 1/3 = 1/4
    assert majority_at_k(answers, correct, 2) == pytest.approx(1 / 4)
    assert majority_at_k(answers, correct, 4) == pytest.approx(1 / 3)


# ---------------------------------------------------------------- brute force


@st.composite
def inconsistent_problems(draw, max_n: int = 8):
    """``correct`` drawn per candidate, independently of the answer (a wrong chain may
    carry a right answer, a right one may have no answer); scores with frequent ties."""
    n = draw(st.integers(1, max_n))
    answers = draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n))
    correct = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=float)
    scores = np.array(draw(st.lists(st.sampled_from([-2.0, -1.0, 0.0, 0.5]), min_size=n, max_size=n)))
    return answers, correct, scores


@SETTINGS
@given(inconsistent_problems())
def test_majority_matches_brute_force_with_per_candidate_correctness(problem):
    answers, correct, _ = problem
    for k in range(1, len(answers) + 1):
        assert majority_at_k(answers, correct, k) == pytest.approx(brute_vote(answers, correct, k), abs=1e-10)


@SETTINGS
@given(inconsistent_problems())
def test_weighted_vote_matches_brute_force_with_per_candidate_correctness(problem):
    answers, correct, scores = problem
    weights = score_weights(scores)
    for k in range(1, len(answers) + 1):
        expected = brute_vote(answers, correct, k, weights, scores)
        assert weighted_majority_at_k(answers, correct, scores, k) == pytest.approx(expected, abs=1e-10)
        # the same with one subset only allowed: the k <= 2 fast path is skipped, k > 2 is sampled
        if math.comb(len(answers), k) == 1:
            assert weighted_majority_at_k(answers, correct, scores, k, max_subsets=0, n_subsets=1) == pytest.approx(
                expected, abs=1e-10)


@SETTINGS
@given(inconsistent_problems())
def test_no_vote_beats_pass_at_k_even_when_wrong_chains_carry_right_answers(problem):
    answers, correct, scores = problem
    n, c = len(correct), int(correct.sum())
    for k in range(1, n + 1):
        ceiling = pass_at_k(n, c, k) + 1e-12
        assert majority_at_k(answers, correct, k) <= ceiling
        assert weighted_majority_at_k(answers, correct, scores, k) <= ceiling


def test_weighted_vote_by_random_subsets_agrees_with_brute_force():
    rng = np.random.default_rng(12)
    answers = ["a", "b", "a", "c", "b", None, "a", "b", "c", "a", "b", "a"]
    correct = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1], dtype=float)
    scores = rng.integers(0, 5, size=12).astype(float)  # ties inside answers
    for k in (2, 3, 6, 9):
        expected = brute_vote(answers, correct, k, score_weights(scores), scores)
        sampled = weighted_majority_at_k(answers, correct, scores, k, rng=rng, max_subsets=1, n_subsets=20_000)
        assert sampled == pytest.approx(expected, abs=5 * 0.5 / math.sqrt(20_000))


@SETTINGS
@given(inconsistent_problems(max_n=12))
def test_maj_at_one_is_pass_at_one(problem):
    answers, correct, scores = problem
    correct = correct * np.array([a is not None for a in answers])  # a correct candidate has an answer
    pass_1 = pass_at_k(len(correct), int(correct.sum()), 1)
    assert majority_at_k(answers, correct, 1) == pytest.approx(pass_1, abs=1e-12)
    assert weighted_majority_at_k(answers, correct, scores, 1) == pytest.approx(pass_1, abs=1e-12)


# ---------------------------------------------------------------- GSM8K: nothing changes


@pytest.fixture(scope="module")
def gsm8k_labels():
    """Verdicts of the GSM8K checker on 8 test problems x 6 candidates: two gold solutions,
    a bare right answer, two wrong answers and one without an answer."""
    task = get_task("gsm8k", {"data_dir": str(GSM8K_DIR)})
    try:
        problems = task.problems("test")[:8]
        rng = np.random.default_rng(13)
        labeled = []
        for problem in problems:
            value = int(problem.answer)
            texts = [problem.solution, problem.solution, f"The answer is {value}.",
                     f"The answer is {value + 1}.", f"The answer is {value + 2}.", "I cannot solve this."]
            order = rng.permutation(len(texts))
            verdicts = task.check_many([problem] * len(texts), [texts[i] for i in order])
            labeled.append((verdicts, rng.integers(0, 3, size=len(texts)).astype(float)))
    finally:
        task.close()
    return labeled


def test_on_gsm8k_labels_the_votes_equal_the_answer_credited_numbers(gsm8k_labels):
    for verdicts, scores in gsm8k_labels:
        answers = [v.answer for v in verdicts]
        correct = np.array([v.correct for v in verdicts], dtype=float)
        answer_correct = np.array([v.answer_correct for v in verdicts], dtype=float)
        assert (correct == answer_correct).all() and correct.sum() == 3
        _, counts, answer_worth = answer_groups(answers, answer_correct)
        for k in range(1, len(answers) + 1):
            old_majority = exact_majority(counts, answer_worth, len(answers), k)  # the former code path
            assert majority_at_k(answers, correct, k) == old_majority
            old_weighted = brute_vote(answers, correct, k, score_weights(scores), scores, answer_correct=answer_correct)
            assert weighted_majority_at_k(answers, correct, scores, k) == pytest.approx(old_weighted, abs=1e-12)
