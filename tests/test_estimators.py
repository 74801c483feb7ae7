"""The evaluation estimators against brute force over all k-subsets, and hand-computed cases."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from vstar.errors import VstarError
from vstar.evaluation import (
    EstimatorInputError,
    best_of_k,
    bootstrap_ci,
    curve,
    default_ks,
    majority_at_k,
    metric_table,
    pass_at_k,
    score_weights,
    weighted_majority_at_k,
)
from vstar.evaluation.metrics import majority_of, prepare_problems
from vstar.evaluation.voting import subset_vote_mean
from vote_brute_force import brute_vote


# ---------------------------------------------------------------- brute force


def brute_pass(correct, k):
    return np.mean([any(correct[i] for i in subset) for subset in itertools.combinations(range(len(correct)), k)])


def brute_best(scores, correct, k):
    """Top-scored member of every k-subset; ties at the top share the credit."""
    values = []
    for subset in itertools.combinations(range(len(scores)), k):
        top = max(scores[i] for i in subset)
        values.append(np.mean([correct[i] for i in subset if scores[i] == top]))
    return float(np.mean(values))


def paper_formula_over_tie_orders(scores, correct, k):
    """The paper's formula, averaged over every ordering consistent with the scores."""
    n = len(scores)
    results = []
    for order in itertools.permutations(range(n)):
        if all(scores[order[i]] >= scores[order[i + 1]] for i in range(n - 1)):
            total = sum(math.comb(n - i - 1, k - 1) * correct[order[i]] for i in range(n - k + 1))
            results.append(total / math.comb(n, k))
    return float(np.mean(results))


def random_case(rng, n_max=9, n_answers=4, ties=True):
    n = int(rng.integers(1, n_max + 1))
    good = {f"a{i}": bool(rng.random() < 0.4) for i in range(n_answers)}
    answers = [None if rng.random() < 0.15 else f"a{int(rng.integers(0, n_answers))}" for _ in range(n)]
    answer_correct = [good[a] if a is not None else False for a in answers]
    scores = rng.integers(0, 4, size=n).astype(float) if ties else rng.normal(size=n)
    return answers, answer_correct, scores


# ---------------------------------------------------------------- pass@k


def test_pass_at_k_matches_binomial_formula_and_brute_force():
    for n in range(1, 40):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(30):
        correct = rng.random(int(rng.integers(1, 9))) < 0.3
        for k in range(1, len(correct) + 1):
            assert pass_at_k(len(correct), int(correct.sum()), k) == pytest.approx(brute_pass(correct, k))


def test_pass_at_k_large_n_is_stable():
    assert pass_at_k(10_000, 0, 5_000) == 0.0
    assert pass_at_k(10_000, 1, 5_000) == pytest.approx(0.5)
    assert pass_at_k(10_000, 5_001, 5_000) == 1.0
    assert 0.0 < pass_at_k(1_000, 1, 1) == pytest.approx(0.001)


# ---------------------------------------------------------------- Best-of-k


def test_best_of_k_without_ties_is_the_paper_formula():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 30))
        scores, correct = rng.normal(size=n), rng.random(n) < 0.5
        ranked = correct[np.argsort(-scores)]
        for k in range(1, n + 1):
            paper = sum(math.comb(n - i - 1, k - 1) * ranked[i] for i in range(n - k + 1)) / math.comb(n, k)
            assert best_of_k(scores, correct, k) == pytest.approx(paper, abs=1e-12)


def test_best_of_k_with_ties_matches_brute_force_and_tie_orders():
    rng = np.random.default_rng(2)
    for _ in range(150):
        _, _, scores = random_case(rng)
        correct = rng.random(len(scores)) < 0.5
        for k in range(1, len(scores) + 1):
            assert best_of_k(scores, correct, k) == pytest.approx(brute_best(scores, correct, k), abs=1e-12)
    for _ in range(30):
        n = int(rng.integers(1, 7))
        scores, correct = rng.integers(0, 3, size=n).astype(float), rng.random(n) < 0.5
        for k in range(1, n + 1):
            expected = paper_formula_over_tie_orders(scores, correct, k)
            assert best_of_k(scores, correct, k) == pytest.approx(expected, abs=1e-12)


def test_best_of_k_hand_computed_ties():
    assert best_of_k([1.0, 1.0], [1, 0], 1) == pytest.approx(0.5)
    assert best_of_k([1.0, 1.0], [1, 0], 2) == pytest.approx(0.5)  # tie at the top: a coin flip
    # subsets {0,1}, {0,2} -> candidate 0 (wrong); {1,2} -> tie, half credit
    assert best_of_k([2.0, 1.0, 1.0], [0, 1, 0], 2) == pytest.approx(1 / 6)
    # six subsets: three led by candidate 0 (0), {1,2} tie (0.5), {1,3} -> 1, {2,3} -> 0
    assert best_of_k([3.0, 2.0, 2.0, 1.0], [0, 1, 0, 1], 2) == pytest.approx(0.25)
    # order of the input and ties hidden by a stable sort must not matter
    assert best_of_k([2.0, 2.0, 3.0, 1.0], [0, 1, 0, 1], 2) == pytest.approx(0.25)
    assert best_of_k([-np.inf, -np.inf, 0.0], [1, 0, 0], 2) == pytest.approx(1 / 6)


def test_best_of_k_large_n_is_finite_and_bounded():
    rng = np.random.default_rng(3)
    scores, correct = rng.integers(0, 20, 1024).astype(float), rng.random(1024) < 0.3
    for k in (1, 64, 512, 1024):
        assert 0.0 <= best_of_k(scores, correct, k) <= 1.0
    assert best_of_k(scores, correct, 1) == pytest.approx(correct.mean())


# ---------------------------------------------------------------- maj@k


def test_majority_matches_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(120):
        answers, answer_correct, _ = random_case(rng, n_max=10, n_answers=int(rng.integers(1, 6)))
        for k in range(1, len(answers) + 1):
            expected = brute_vote(answers, answer_correct, k)
            assert majority_at_k(answers, answer_correct, k) == pytest.approx(expected, abs=1e-10)


def test_majority_matches_enumeration_on_structured_counts():
    """N = 16, every k: big answers, ties between equal counts, singletons, None."""
    layouts = [
        [6, 5, 2, 1, 1, 0],
        [4, 4, 4, 2, 1, 1],
        [8, 8, 0, 0, 0, 0],
        [3, 3, 3, 3, 2, 2],
        [10, 2, 1, 1, 1, 1],
    ]
    for layout in layouts:
        answers = [f"a{i}" for i, count in enumerate(layout) for _ in range(count)]
        answers += [None] * (16 - len(answers))
        answer_correct = [a in ("a1", "a3") for a in answers]
        group = np.array([int(a[1:]) if a else -1 for a in answers])
        correct = np.array(answer_correct, dtype=float)
        for k in range(1, 17):
            enumerated = subset_vote_mean(group, np.ones(16), np.zeros(16), correct, k, np.random.default_rng(0), 20_000, 0)
            assert majority_at_k(answers, answer_correct, k) == pytest.approx(enumerated, abs=1e-10)


def test_majority_large_n_agrees_with_random_subsets():
    rng = np.random.default_rng(5)
    counts = [40, 25, 25, 10, 5, 5, 3, 2, 2, 1, 1, 1]
    answers = [f"a{i}" for i, c in enumerate(counts) for _ in range(c)] + [None] * (128 - sum(counts))
    rng.shuffle(answers)
    answer_correct = [a in ("a1", "a4") for a in answers]
    group = np.array([int(a[1:]) if a else -1 for a in answers])
    correct = np.array(answer_correct, dtype=float)
    for k in (3, 16, 64, 100):
        exact = majority_at_k(answers, answer_correct, k)
        sampled = subset_vote_mean(group, np.ones(128), np.zeros(128), correct, k, rng, 0, 20_000)
        assert exact == pytest.approx(sampled, abs=5 * 0.5 / math.sqrt(20_000))


def test_majority_hand_computed():
    # subsets of 2 from [a, a, b, None]: {aa}->1 {ab}->.5 {a-}->1 {ab}->.5 {a-}->1 {b-}->0
    assert majority_at_k(["a", "a", "b", None], [1, 1, 0, 0], 2) == pytest.approx(4 / 6)
    assert majority_at_k([None, None, None], [0, 0, 0], 2) == 0.0
    assert majority_at_k(["x", "y"], [1, 0], 2) == pytest.approx(0.5)
    assert majority_at_k(["x"] * 5, [1] * 5, 3) == pytest.approx(1.0)


def test_majority_extreme_sizes_stay_exact_and_finite():
    answers = ["a"] * 600 + ["b"] * 400 + [None] * 24
    value = majority_at_k(answers, [a == "b" for a in answers], 512)
    assert 0.0 <= value < 1e-6  # b needs more than a among 512 draws: essentially never
    assert majority_at_k([str(i) for i in range(128)], [i < 32 for i in range(128)], 64) == pytest.approx(0.25)


# ---------------------------------------------------------------- weighted vote


def test_weighted_vote_hand_computed():
    answers, answer_correct = ["a", "b", "b"], [1, 0, 0]
    scores = np.log([1.0, 0.6, 0.5])  # weights exp(s - max s) = 1, 0.6, 0.5
    assert weighted_majority_at_k(answers, answer_correct, scores, 1) == pytest.approx(1 / 3)
    # {a,b1}: 1 vs .6 -> a; {a,b2}: a; {b1,b2}: b -> 2/3
    assert weighted_majority_at_k(answers, answer_correct, scores, 2) == pytest.approx(2 / 3)
    assert weighted_majority_at_k(answers, answer_correct, scores, 3) == 0.0  # 1 < 0.6 + 0.5
    # a very high temperature flattens the weights into a plain vote
    assert weighted_majority_at_k(answers, answer_correct, scores, 3, temperature=1e9) == 0.0
    assert weighted_majority_at_k(["a", "b"], [1, 0], [0.0, 0.0], 2) == pytest.approx(0.5)  # exact tie


def test_weighted_vote_matches_brute_force_exactly_and_by_sampling():
    rng = np.random.default_rng(6)
    for _ in range(60):
        answers, answer_correct, scores = random_case(rng, n_max=9, ties=bool(rng.random() < 0.5))
        weights = score_weights(scores)
        for k in range(1, len(answers) + 1):
            expected = brute_vote(answers, answer_correct, k, weights, scores)
            assert weighted_majority_at_k(answers, answer_correct, scores, k) == pytest.approx(expected, abs=1e-10)
    answers = ["a", "b", "c", "a", "b", None, "a", "c", "b", "b", "a", "c"]
    answer_correct = [a == "c" for a in answers]
    scores = np.linspace(0.0, 1.0, 12)
    for k in (4, 6, 8):
        expected = brute_vote(answers, answer_correct, k, score_weights(scores), scores)
        sampled = weighted_majority_at_k(answers, answer_correct, scores, k, rng=rng, max_subsets=1, n_subsets=20_000)
        assert sampled == pytest.approx(expected, abs=5 * 0.5 / math.sqrt(20_000))


def test_score_weights():
    assert score_weights([0.0, -1.0]) == pytest.approx([1.0, math.exp(-1.0)])
    assert score_weights([-1000.0, -1001.0]) == pytest.approx([1.0, math.exp(-1.0)])  # no underflow
    assert list(score_weights([np.inf, 3.0, np.inf])) == [1.0, 0.0, 1.0]
    assert list(score_weights([-np.inf, -np.inf])) == [1.0, 1.0]
    with pytest.raises(ValueError):
        score_weights([1.0], temperature=0.0)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call",
    [
        lambda: best_of_k([1.0, np.nan], [1, 0], 1),
        lambda: best_of_k([1.0, 2.0], [1, 0, 1], 1),
        lambda: best_of_k([1.0, 2.0], [1, 0], 3),
        lambda: best_of_k([1.0, 2.0], [1, 0], 0),
        lambda: pass_at_k(4, 5, 1),
        lambda: majority_at_k(["a"], [1, 0], 1),
        lambda: weighted_majority_at_k(["a", "b"], [1, 0], [0.0, np.nan], 1),
        lambda: weighted_majority_at_k(["a", "b"], [1, 0], [0.0], 1),
        lambda: bootstrap_ci([]),
        lambda: bootstrap_ci([0.5, np.nan]),
    ],
)
def test_bad_input_raises_value_error_that_is_a_vstar_error(call):
    with pytest.raises(ValueError) as caught:
        call()
    assert isinstance(caught.value, VstarError)


def test_nan_score_message_names_the_candidate():
    with pytest.raises(EstimatorInputError, match="candidate 2"):
        best_of_k([0.0, 1.0, np.nan], [1, 1, 1], 1)


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_and_brackets_the_mean():
    values = np.random.default_rng(8).random(50)
    first, second = bootstrap_ci(values, seed=3), bootstrap_ci(values, seed=3)
    assert first == second and all(type(v) is float for v in first)
    mean, lo, hi = first
    assert lo <= mean <= hi and mean == pytest.approx(values.mean())
    assert bootstrap_ci([0.25]) == (0.25, 0.25, 0.25)
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0, 1.0)


def test_bootstrap_interval_covers_the_true_rate_about_95_percent():
    rng = np.random.default_rng(9)
    trials, covered, p = 300, 0, 0.3
    for seed in range(trials):
        values = (rng.random(200) < p).astype(float)
        _, lo, hi = bootstrap_ci(values, n_boot=400, seed=seed)
        covered += lo <= p <= hi
    assert 0.90 <= covered / trials <= 0.99


# ---------------------------------------------------------------- tables


def _problems(rng, count=12, n=8):
    problems = []
    for index in range(count):
        answers = [None if rng.random() < 0.1 else f"a{int(rng.integers(0, 3))}" for _ in range(n)]
        answer_correct = [a == "a0" for a in answers]
        problems.append(
            {
                "id": f"p{index}",
                "correct": answer_correct,
                "answers": answers,
                "answer_correct": answer_correct,
                "scores": {"verifier": list(rng.normal(size=n)), "tied": [0.0] * n},
            }
        )
    return problems


def test_default_ks():
    assert default_ks(1) == [1]
    assert default_ks(64) == [1, 2, 4, 8, 16, 32, 64]
    assert default_ks(100) == [1, 2, 4, 8, 16, 32, 64, 100]


def test_metric_table_is_plain_json_and_matches_the_estimators():
    problems = _problems(np.random.default_rng(10))
    table = metric_table(problems, n_boot=200)
    assert set(table) == {
        "pass@k", "maj@k", "best_of_k/tied", "best_of_k/verifier", "weighted_maj@k/tied", "weighted_maj@k/verifier"
    }
    assert list(table["maj@k"]) == [1, 2, 4, 8]
    json.loads(json.dumps(table))
    for metric in table.values():
        for point in metric.values():
            assert all(type(point[key]) is float for key in ("mean", "lo", "hi"))
            assert 0.0 <= point["lo"] <= point["mean"] <= point["hi"] <= 1.0
    direct = np.mean([majority_at_k(p["answers"], p["answer_correct"], 4) for p in problems])
    assert table["maj@k"][4]["mean"] == pytest.approx(direct)
    direct = np.mean([best_of_k(p["scores"]["verifier"], p["correct"], 2) for p in problems])
    assert table["best_of_k/verifier"][2]["mean"] == pytest.approx(direct)
    # all-equal scores: Best-of-k is a random pick, i.e. pass@1 for every k
    assert table["best_of_k/tied"][8]["mean"] == pytest.approx(table["pass@k"][1]["mean"])
    assert metric_table(problems, n_boot=200) == table  # reproducible, Monte-Carlo parts included


def test_curve_and_prepare_report_the_problem_and_field():
    problems = _problems(np.random.default_rng(11), count=3)
    problems[1]["answer_correct"] = problems[1]["answer_correct"][:-1]
    with pytest.raises(EstimatorInputError, match=r"problem 1 \(id 'p1'\).*answer_correct"):
        prepare_problems(problems)
    problems = _problems(np.random.default_rng(11), count=3)
    problems[2]["scores"]["verifier"][0] = float("nan")
    with pytest.raises(EstimatorInputError, match=r"problem 2 .*scores.verifier"):
        prepare_problems(problems)
    with pytest.raises(EstimatorInputError, match="k=9 exceeds"):
        curve(majority_of, _problems(np.random.default_rng(11), count=2), [9])
