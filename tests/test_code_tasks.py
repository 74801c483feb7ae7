"""The mbpp and humaneval tasks: splits, prompts, options, and their reference solutions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from vstar.checkers.code import check_programs
from vstar.errors import VstarError
from vstar.sandbox.assert_rewrite import compile_test, rewrite_test
from vstar.sandbox.runner import _load_test, execute_test
from vstar.tasks import get_task
from vstar.tasks.humaneval import truncate_completion
from vstar.tasks.mbpp import clean_completion

SLOW_MBPP = {123: "amicable numbers up to 9999: about 10-25 s of CPU, over the timeout"}


@pytest.fixture(scope="module")
def mbpp(shared_data: Path):
    # timeout 2 s: every reference solution but task 123 runs in under 0.1 s
    task = get_task("mbpp", {"data_path": str(shared_data / "mbpp" / "mbpp.jsonl"), "workers": 2, "timeout": 2})
    yield task
    task.close()


@pytest.fixture(scope="module")
def humaneval():
    task = get_task("humaneval", {"workers": 2})
    yield task
    task.close()


def test_mbpp_splits_follow_the_standard_task_ids(mbpp):
    sft, query, test = mbpp.problems("sft"), mbpp.problems("query"), mbpp.problems("test")
    assert (len(sft), len(query), len(test)) == (374, 374, 500)
    assert [p.id for p in sft] == [p.id for p in query] == [f"mbpp/{i}" for i in range(601, 975)]
    assert [p.id for p in test] == [f"mbpp/{i}" for i in range(11, 511)]
    assert all(p.solution and p.solution.endswith("\n[DONE]") for p in sft)
    assert all(p.solution is None for p in query + test)
    assert len(test[0].meta["tests"]) == 3 and test[0].meta["task_id"] == 11


def test_mbpp_prompt_has_three_shots_from_ids_2_to_4(mbpp):
    prompt = mbpp.problems("test")[0].prompt
    assert prompt.count("You are an expert Python programmer") == 4
    assert prompt.count("[DONE]") == 3 and prompt.endswith("[BEGIN]\n")
    assert "Write a function to find the similar elements" in prompt.split("[DONE]")[0]  # task 2
    assert 'assert remove_Occ("hello","l") == "heo"' in prompt.split("[DONE]")[-1]  # task 11 itself


def test_mbpp_options(shared_data: Path):
    path = str(shared_data / "mbpp" / "mbpp.jsonl")
    task = get_task("mbpp", {"data_path": path, "few_shot": 0, "n_sft": 2, "n_query": 3, "n_test": 4})
    assert [len(task.problems(split)) for split in ("sft", "query", "test")] == [2, 3, 4]
    assert task.problems("test")[0].prompt.startswith("You are an expert Python programmer")
    with pytest.raises(VstarError, match=r"task\.options\.colour: unknown option.*few_shot"):
        get_task("mbpp", {"data_path": path, "colour": 1})
    with pytest.raises(VstarError, match=r"task\.options\.few_shot"):
        get_task("mbpp", {"data_path": path, "few_shot": 11})
    with pytest.raises(VstarError, match=r"task\.options\.timeout"):
        get_task("mbpp", {"data_path": path, "timeout": -1})
    with pytest.raises(VstarError, match=r"task\.options\.isolation"):
        get_task("mbpp", {"data_path": path, "isolation": "docker"})


def test_mbpp_bad_rows_name_the_line_and_field(tmp_path: Path):
    bad = tmp_path / "mbpp.jsonl"
    bad.write_text(json.dumps({"task_id": 11, "text": "t", "code": "x = 1", "test_list": "assert x"}) + "\n")
    with pytest.raises(VstarError, match=r"mbpp\.jsonl line 1: field 'test_list'"):
        get_task("mbpp", {"data_path": str(bad), "few_shot": 0}).problems("test")
    with pytest.raises(VstarError, match="file not found"):
        get_task("mbpp", {"data_path": str(tmp_path / "missing.jsonl")}).problems("test")


def test_clean_completion():
    assert clean_completion("def f():\n    return 1\n[DONE]\nmore text") == "def f():\n    return 1"
    assert clean_completion("Here:\n```python\ndef f():\n    return 1\n```\nDone.") == "def f():\n    return 1"
    assert clean_completion("[BEGIN]\ndef f(): pass\n[DONE]") == "def f(): pass"


def test_mbpp_checks_completions(mbpp):
    problems = [p for p in mbpp.problems("sft") if p.meta["task_id"] in (601, 602)]
    gold = [p.solution for p in problems]
    verdicts = mbpp.check_many(problems + problems, gold + ["def nothing():\n    pass\n[DONE]"] * 2)
    assert [v.status for v in verdicts] == ["passed", "passed", "failed", "failed"]
    assert all(v.answer is None and len(v.tests) == 3 for v in verdicts)


def test_mbpp_setup_runs_after_the_code(mbpp):
    problems = [p for p in mbpp.reference_problems() if p.meta["task_id"] in (367, 927)]
    assert all("Node(" in p.meta["setup"] for p in problems)
    assert all(v.correct for v in mbpp.check_many(problems, [p.solution for p in problems]))


def test_all_mbpp_reference_solutions_pass(mbpp):
    """974 reference programs, a few seconds on 2 CPUs: all pass but task 123, which times out."""
    problems = mbpp.reference_problems()
    verdicts = mbpp.check_many(problems, [p.solution for p in problems])
    failing = {p.meta["task_id"]: v for p, v in zip(problems, verdicts) if not v.correct}
    assert len(problems) == 974
    assert set(failing) <= set(SLOW_MBPP), {k: v.reason for k, v in failing.items()}
    assert all(v.status == "timeout" for v in failing.values())


@pytest.mark.slow
def test_mbpp_task_123_passes_with_time(shared_data: Path):
    task = get_task("mbpp", {"data_path": str(shared_data / "mbpp" / "mbpp.jsonl"), "timeout": 300, "workers": 1})
    problem = next(p for p in task.reference_problems() if p.meta["task_id"] == 123)
    assert task.check_many([problem], [problem.solution])[0].correct
    task.close()


def test_humaneval_is_test_only(humaneval):
    problems = humaneval.problems("test")
    assert len(problems) == 164 and problems[0].id == "HumanEval/0"
    assert problems[0].meta["entry_point"] == "has_close_elements"
    for split in ("sft", "query"):
        with pytest.raises(VstarError, match="transfer-evaluation"):
            humaneval.problems(split)
    assert len(get_task("humaneval", {"n_test": 5}).problems("test")) == 5


def test_all_humaneval_canonical_solutions_pass(humaneval):
    problems = humaneval.problems("test")
    verdicts = humaneval.check_many(problems, [p.solution for p in problems])
    assert [p.id for p, v in zip(problems, verdicts) if not v.correct] == []


def test_humaneval_wrong_and_truncated_completions(humaneval):
    problem = humaneval.problems("test")[0]
    extra = "\n\ndef helper():\n    pass\nprint('noise')\n"
    assert truncate_completion(problem.solution + extra).rstrip() == problem.solution.rstrip()
    verdicts = humaneval.check_many([problem, problem], [problem.solution + extra, "    return True\n"])
    assert [v.status for v in verdicts] == ["passed", "failed"]


def run_rewritten(test: str, namespace: dict) -> list[tuple]:
    """Run a compiled test here with a checker that records what it is asked and says yes."""
    asked: list[tuple] = []
    execute_test(_load_test(compile_test(test), lambda request: asked.append(request) or True), namespace)
    return asked


def test_rewritten_asserts_report_their_values():
    f = {"f": lambda x: x * 2}
    multi_line = dedent("""
        def check(c):
            assert c(1) == [2,
                4][0]  # é
            for i in (1, 2):
                assert not c(i) < 0
        check(f)
    """)
    assert run_rewritten(multi_line, dict(f)) == [("cmp", "==", 2, 2), ("false", False), ("false", False)]
    same_line = "x = f(3); assert x == 6, 'six'\nassert x\nassert x is not None\n"  # not spliceable: tree path
    assert run_rewritten(same_line, dict(f)) == [("cmp", "==", 6, 6), ("true", 6), ("cmp", "is not", 6, None)]
    assert "__vstar_check__" in rewrite_test("assert f(1) == 2")
    # one line ``assert a == b``: sent as the pair of values; the runner checks and raises
    namespace = dict(f)
    assert run_rewritten("assert f(x := 2) == [4][0]", namespace) == [("cmp", "==", 4, 4)]
    assert namespace["x"] == 2  # evaluated in the test's namespace, as the statement would be
    test = _load_test(compile_test("assert f(2)  ==  5 "), lambda request: False)
    assert isinstance(test, tuple)  # (code, label, checker): the one-line path, not a statement
    with pytest.raises(AssertionError, match=r"^assert f\(2\)  ==  5$"):
        execute_test(test, namespace)
    with pytest.raises(ZeroDivisionError):  # evaluating a side raises as the assert would
        execute_test(_load_test(compile_test("assert f(1 / 0) == 2"), lambda request: True), namespace)


def test_the_rehearsal_runs_each_kind_of_test_and_puts_main_back(monkeypatch):
    from vstar.checkers.code import verdict_from_run
    from vstar.sandbox import runner, values
    from vstar.sandbox.harness import RunResult, _parse_report, rehearsal_job

    monkeypatch.setattr(runner, "values", values)  # as the worker sets it
    main = sys.modules["__main__"]
    read, write = os.pipe()
    try:
        runner.rehearse(rehearsal_job(), write, times=1)  # here, in pytest: the guard stays disarmed
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as pipe:
        records = _parse_report(pipe.read(), "0" * 32)
    assert sys.modules["__main__"] is main
    verdict = verdict_from_run(RunResult(records=records, exit_code=0), 4, 5.0)
    assert verdict.tests == ("passed", "failed", "error", "passed")
    assert [record[2] for record in records if record[0] == "check"] == ["cmp", "cmp", "cmp", "true", "false"]


def test_bad_tests_and_lengths_are_refused():
    with pytest.raises(VstarError, match=r"tests\[0\]\[0\] is not valid Python"):
        check_programs(["x = 1"], [["assert ("]], [""], {"isolation": "rlimits"})
    with pytest.raises(VstarError, match="one entry per program"):
        check_programs(["x = 1"], [], [""])


def test_verdicts_are_decided_outside_from_the_reported_values():
    from vstar.checkers.code import verdict_from_run
    from vstar.sandbox.harness import RunResult, _parse_report
    from vstar.sandbox.runner import report_tag

    nonce = "ab" * 16

    def line(record: list, key: str = nonce) -> bytes:  # as the runner writes it, one record a line
        body = json.dumps(record, separators=(",", ":")).encode()
        return b'["' + report_tag(key.encode(), body) + b'",' + body + b"]"

    genuine = [
        ["check", 0, "cmp", "==", ["i", "1"], ["i", "2"]],  # 1 == 2, though the child said ok
        ["end", 0, "ok", ""],
        ["done"],
    ]
    forged = [
        line(["end", 1, "ok", ""], key="f" * 32),  # tagged with another key
        b'["' + nonce.encode() + b'",["end",1,"ok",""]]',  # the nonce itself is no tag
        line(["end", 1, "failed", "AssertionError"]).replace(b'"failed"', b'"ok"'),  # changed after tagging
        line(["check", 1, "cmp", "==", ["i", "1"], ["i", "2"]]).replace(b'["i","2"]', b'["i","1"]'),
    ]
    garbage = b'\nnot json\n' + line(["end", 1, "ok", ""])[:-3]  # a cut-off line
    report = b"\n".join([line(genuine[0]), forged[0], line(genuine[1]), *forged[1:], line(genuine[2])]) + garbage
    records = _parse_report(report, nonce)
    assert records == genuine

    def tagged(body: bytes) -> bytes:
        return b'["' + report_tag(nonce.encode(), body) + b'",' + body + b"]"

    # a tagged body that is not JSON (the runner never writes one) costs only itself
    assert _parse_report(b"\n".join([line(genuine[0]), tagged(b'["end",0,'), line(genuine[2])]), nonce) == [
        genuine[0], genuine[2]
    ]
    several = json.dumps(genuine, separators=(",", ":"))[1:-1].encode()  # a fast run: one line
    assert _parse_report(tagged(several) + b"\n", nonce) == genuine
    assert _parse_report(tagged(several.replace(b'"ok"', b'"no"')).replace(b'"no"', b'"ok"'), nonce) == []
    verdict = verdict_from_run(RunResult(records=records, exit_code=0), 2, 5.0)
    assert verdict.status == "failed" and verdict.tests == ("failed", "not_run")
    assert verdict_from_run(RunResult(records=records[:2], exit_code=0), 1, 5.0).status == "error"  # no "done"
    timed_out = verdict_from_run(RunResult(records=records[1:2], timed_out=True), 2, 5.0)
    assert timed_out.status == "timeout" and timed_out.tests == ("passed", "timeout")
