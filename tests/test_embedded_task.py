"""The embedded task: determinism, disjoint splits, and a checker that accepts gold and rejects errors."""

import pytest

from vstar.errors import VstarError
from vstar.tasks import get_task
from vstar.tasks.embedded import check_chain, reachable

SMALL = {"n_sft": 40, "n_query": 60, "n_test": 30}


def test_same_seed_same_problems_other_seed_other_problems():
    a = get_task("embedded", SMALL)
    b = get_task("embedded", SMALL)
    c = get_task("embedded", {**SMALL, "seed": 1})
    for split in ("sft", "query", "test"):
        assert [p.prompt for p in a.problems(split)] == [p.prompt for p in b.problems(split)]
    assert [p.prompt for p in a.problems("test")] != [p.prompt for p in c.problems("test")]


def test_splits_sizes_and_no_train_test_overlap():
    task = get_task("embedded", SMALL)
    sft, query, test = (task.problems(s) for s in ("sft", "query", "test"))
    assert (len(sft), len(query), len(test)) == (40, 100, 30)
    assert {p.prompt for p in sft} <= {p.prompt for p in query}  # D_query covers D_SFT's problems
    assert not {p.prompt for p in query} & {p.prompt for p in test}
    assert all(p.solution is None for p in query)
    assert all(p.solution for p in sft + test)


def test_test_split_stable_when_training_sizes_change():
    small = get_task("embedded", SMALL)
    big = get_task("embedded", {**SMALL, "n_query": 500})
    assert [p.prompt for p in small.problems("test")] == [p.prompt for p in big.problems("test")]


def test_every_gold_solution_checks_correct():
    task = get_task("embedded", {"n_sft": 200, "n_query": 0, "n_test": 200})
    problems = task.problems("sft") + task.problems("test")
    verdicts = task.check_many(problems, [p.solution for p in problems])
    assert all(v.correct and v.status == "passed" and v.answer_correct for v in verdicts)


@pytest.mark.parametrize(
    "completion, status, reason",
    [
        ("11+3=14\n14+5=19\n", "passed", ""),
        ("3+11=14\n14+5=19", "passed", ""),  # any order, trailing newline optional
        ("11+3=14\n14+5=20\n", "failed", "step 2: 14+5 is 19, not 20"),
        ("11+3=14\n14+4=18\n", "failed", "step 2: 4 is not an unused given number"),
        ("11+3=14\n14+3=17\n", "failed", "step 2: 3 is not an unused given number"),  # used twice
        ("11+3=14\n13+5=18\n", "failed", "step 2: starts from 13, but the running value is 14"),
        ("11+7=18\n", "failed", "ends at 18, target is 19"),
        ("11+3=14\n14+5=19\nhello", "no_answer", "step 3: cannot parse 'hello'"),
        ("", "no_answer", "empty completion"),
    ],
)
def test_checker_table(completion, status, reason):
    verdict = check_chain([3, 11, 7, 5], 19, completion)
    assert verdict.status == status
    assert verdict.correct == (status == "passed")
    assert verdict.reason == reason


def test_vote_answer_is_the_numbers_used():
    wrong_sum = check_chain([3, 11, 7, 5], 19, "11+3=14\n14+5=20\n")
    assert wrong_sum.answer == "3,5,11" and wrong_sum.answer_correct  # these numbers can make 19
    dead_end = check_chain([3, 11, 7, 5], 19, "11+7=18\n")
    assert dead_end.answer == "7,11" and not dead_end.answer_correct


def test_reachable():
    assert reachable([3, 11, 5], 19)
    assert reachable([3, 11, 5], 13)  # 11 + 5 - 3
    assert not reachable([3, 11], 19)
    assert not reachable([19], 19)


def test_bad_options_are_named():
    with pytest.raises(VstarError, match="task.options.n_sfts: unknown option"):
        get_task("embedded", {"n_sfts": 3})
    with pytest.raises(VstarError, match="min_used"):
        get_task("embedded", {"min_used": 5, "max_used": 5})


def test_the_validation_split_is_disjoint_and_leaves_the_other_splits_alone():
    from vstar.tasks import get_task
    from vstar.tasks.base import SplitAsTest

    small = get_task("embedded", {"n_sft": 30, "n_query": 20, "n_test": 25, "n_val": 0})
    task = get_task("embedded", {"n_sft": 30, "n_query": 20, "n_test": 25, "n_val": 40})
    prompts = {split: [p.prompt for p in task.problems(split)] for split in ("sft", "query", "test", "val")}
    assert len(prompts["val"]) == len(set(prompts["val"])) == 40
    assert not set(prompts["val"]) & (set(prompts["query"]) | set(prompts["test"]))  # query holds sft's too
    for split in ("sft", "query", "test"):  # adding a validation split changes no other split
        assert prompts[split] == [p.prompt for p in small.problems(split)]
    view = SplitAsTest(task, "val")
    assert [p.prompt for p in view.problems("test")] == prompts["val"]
    assert [p.prompt for p in view.problems("sft")] == prompts["sft"]
    problem = view.problems("test")[0]
    assert view.check(problem, problem.solution).correct
