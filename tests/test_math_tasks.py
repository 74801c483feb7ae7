"""The gsm8k, math500 and jsonl tasks: splits, prompts, gold answers, option and data errors."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from vstar.checkers.math_answer import canonical_answer
from vstar.errors import VstarError
from vstar.tasks import Verdict, get_task

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GSM8K_DIR = DATA / "gsm8k"
MATH500_PATH = DATA / "math500" / "test.jsonl"


@pytest.fixture(scope="module")
def gsm8k():
    assert GSM8K_DIR.is_dir(), f"{GSM8K_DIR} missing: the tests need ../shared/data beside the repository"
    task = get_task("gsm8k", {"data_dir": str(GSM8K_DIR)})
    yield task
    task.close()


@pytest.fixture(scope="module")
def math500():
    task = get_task("math500", {"path": str(MATH500_PATH)})
    yield task
    task.close()


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- gsm8k


def test_gsm8k_every_gold_solution_checks_correct(gsm8k) -> None:
    test = gsm8k.problems("test")
    assert len(test) == 1319
    verdicts = gsm8k.check_many(test, [problem.solution for problem in test])
    assert sum(verdict.correct for verdict in verdicts) == 1319
    assert all(verdict.answer == problem.answer for verdict, problem in zip(verdicts, test))


def test_gsm8k_original_hash_format_checks_correct(gsm8k) -> None:
    test = gsm8k.problems("test")
    raw = [json.loads(line)["answer"] for line in (GSM8K_DIR / "test.jsonl").read_text().splitlines()]
    assert sum(verdict.correct for verdict in gsm8k.check_many(test, raw)) == 1319


def test_gsm8k_wrong_answers_rejected(gsm8k) -> None:
    test = gsm8k.problems("test")
    wrong = [f"The answer is {int(problem.answer) + 1}." for problem in test]
    verdicts = gsm8k.check_many(test, wrong)
    assert not any(verdict.correct for verdict in verdicts)
    assert {verdict.status for verdict in verdicts} == {"failed"}


def test_gsm8k_answer_extraction_option() -> None:
    """strict reads stated answers only; flexible also takes the last number of a completion."""
    problems = get_task("gsm8k", {"data_dir": str(GSM8K_DIR), "n_test": 1}).problems("test")  # gold 18
    completions = ["Janet sells 9 eggs for $2 each.\nA: 18", "She gets 9 * 2 dollars, which is 18"]
    verdicts = {}
    for mode in ("strict", "flexible"):
        task = get_task("gsm8k", {"data_dir": str(GSM8K_DIR), "answer_extraction": mode})
        verdicts[mode] = [v.status for v in task.check_many(problems * 2, completions)]
        task.close()
    assert verdicts == {"strict": ["passed", "no_answer"], "flexible": ["passed", "passed"]}


def test_gsm8k_splits_and_format(gsm8k) -> None:
    sft, query, test = (gsm8k.problems(split) for split in ("sft", "query", "test"))
    assert (len(sft), len(query), len(test)) == (7473, 7473, 1319)
    assert sft[17].id == "gsm8k/train/17" and test[5].id == "gsm8k/test/5"
    first = test[0]
    assert first.prompt.startswith("Question: Janet") and first.prompt.endswith("\nAnswer:")
    assert first.answer == "18"
    assert first.solution.endswith("\nThe answer is 18.") and "<<" not in first.solution
    assert all("<<" not in problem.solution and "####" not in problem.solution for problem in sft)
    assert gsm8k.stop == ("\nQuestion:",)
    assert canonical_answer("2,125") in {problem.answer for problem in test}  # "#### 2,125" -> "2125"


def test_gsm8k_few_shot_and_counts() -> None:
    options = {"data_dir": str(GSM8K_DIR), "few_shot": 2, "n_sft": 5, "n_query": 7, "n_test": 3}
    task = get_task("gsm8k", options)
    sft, query, test = (task.problems(split) for split in ("sft", "query", "test"))
    assert (len(sft), len(query), len(test)) == (5, 7, 3)
    assert test[0].prompt.count("Question:") == 3 and test[0].prompt.count("The answer is") == 2
    full = get_task("gsm8k", {"data_dir": str(GSM8K_DIR), "few_shot": 2})
    assert len(full.problems("sft")) == 7471
    assert full.problems("sft")[-1].id == "gsm8k/train/7470"  # the exemplars, rows 7471-7472, are left out


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bogus": 1}, "task.options.bogus"),
        ({"n_test": -1}, "task.options.n_test"),
        ({"few_shot": "two"}, "task.options.few_shot"),
        ({"few_shot": None}, "task.options.few_shot"),
        ({"check_timeout": 0}, "task.options.check_timeout"),
        ({"answer_extraction": "loose"}, "task.options.answer_extraction: expected one of strict, flexible"),
    ],
)
def test_gsm8k_bad_options(options: dict, message: str) -> None:
    with pytest.raises(VstarError, match=message):
        get_task("gsm8k", {"data_dir": str(GSM8K_DIR), **options})


def test_gsm8k_bad_data(tmp_path: Path) -> None:
    with pytest.raises(VstarError, match="test.jsonl: file not found"):
        get_task("gsm8k", {"data_dir": str(tmp_path)}).problems("test")
    write_jsonl(tmp_path / "test.jsonl", [{"question": "1+1?", "answer": "2"}])
    with pytest.raises(VstarError, match=r"test.jsonl line 1: field 'answer' must end with '#### "):
        get_task("gsm8k", {"data_dir": str(tmp_path)}).problems("test")


# ---------------------------------------------------------------- math500


def test_math500_gold_solutions_check_correct(math500) -> None:
    problems = math500.problems("query") + math500.problems("test")
    assert len(problems) == 500
    verdicts = math500.check_many(problems, [problem.solution for problem in problems])
    assert sum(verdict.correct for verdict in verdicts) == 500


def test_math500_split_is_disjoint_and_stable(math500) -> None:
    train_ids = [problem.id for problem in math500.problems("query")]
    test_ids = [problem.id for problem in math500.problems("test")]
    assert not set(train_ids) & set(test_ids)
    assert 200 < len(train_ids) < 300 and len(train_ids) + len(test_ids) == 500
    assert [problem.id for problem in math500.problems("sft")] == train_ids
    assert train_ids[0].startswith("math500/test/")
    hard = get_task("math500", {"path": str(MATH500_PATH), "levels": [5]})
    hard_train = {problem.id for problem in hard.problems("query")}
    assert hard_train and hard_train <= set(train_ids)  # filters never move a problem across the split
    evaluation_only = get_task("math500", {"path": str(MATH500_PATH), "train_fraction": 0})
    assert len(evaluation_only.problems("test")) == 500 and not evaluation_only.problems("sft")


def test_math500_filters_and_answers(math500) -> None:
    options = {"path": str(MATH500_PATH), "levels": [1, 2], "subjects": ["Algebra"], "train_fraction": 0}
    task = get_task("math500", options)
    problems = task.problems("test")
    assert problems and all(p.meta["level"] in (1, 2) and p.meta["subject"] == "Algebra" for p in problems)
    first = math500.problems("query") + math500.problems("test")
    by_id = {problem.id: problem for problem in first}
    assert by_id["math500/test/precalculus/807.json"].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert by_id["math500/test/precalculus/807.json"].prompt.startswith("Question: Convert the point")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"subjects": ["Algbra"]}, "task.options.subjects: \\['Algbra'\\] not in the data"),
        ({"levels": "5"}, "task.options.levels"),
        ({"train_fraction": 1.5}, "task.options.train_fraction"),
        ({"split": "train"}, "task.options.split: unknown option. Accepted: answer_extraction, check_timeout"),
    ],
)
def test_math500_bad_options(options: dict, message: str) -> None:
    with pytest.raises(VstarError, match=message):
        get_task("math500", {"path": str(MATH500_PATH), **options}).problems("test")


def test_math_format_file_without_box_uses_answer_field(tmp_path: Path) -> None:
    rows = [{"problem": "1+1?", "solution": "It is two.", "answer": "2", "level": "Level 1", "type": "Algebra"}]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    task = get_task("math500", {"path": str(path), "levels": [1], "train_fraction": 0})
    assert task.problems("test")[0].answer == "2"
    write_jsonl(tmp_path / "bad.jsonl", [{"problem": "1+1?", "solution": "It is two."}])
    with pytest.raises(VstarError, match="bad.jsonl line 1: field 'answer' is missing"):
        get_task("math500", {"path": str(tmp_path / "bad.jsonl")}).problems("test")


# ---------------------------------------------------------------- jsonl


MATH_ROWS = [
    {"id": 1, "question": "What is 2+3?", "answer": 5, "solution": "2+3=5. The answer is 5."},
    {"id": "b", "question": "Half of 9?", "answer": "4.5"},
    {"id": "c", "question": "Sqrt of 8?", "answer": "2\\sqrt{2}"},
]


@pytest.mark.parametrize("suffix", ["jsonl", "json", "parquet"])
def test_jsonl_math_rows(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data.{suffix}"
    if suffix == "jsonl":
        write_jsonl(path, MATH_ROWS)
    elif suffix == "json":
        path.write_text(json.dumps(MATH_ROWS))
    else:
        import pyarrow
        import pyarrow.parquet

        records = [{**row, "id": str(row["id"]), "answer": str(row["answer"])} for row in MATH_ROWS]
        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(records), path)
    task = get_task("jsonl", {"path": str(path)})
    query = task.problems("query")
    assert [problem.id for problem in query] == ["1", "b", "c"] and task.problems("test") == []
    assert [problem.id for problem in task.problems("sft")] == ["1"]
    assert query[0].prompt == "Question: What is 2+3?\nAnswer:" and task.stop == ("\nQuestion:",)
    symbolic = "\\boxed{\\sqrt{8}}" if suffix == "jsonl" else "\\boxed{2\\sqrt{2}}"  # one worker start is enough
    verdicts = task.check_many(query, ["The answer is 5.", "#### 4.50", symbolic])
    assert [verdict.status for verdict in verdicts] == ["passed", "passed", "passed"]
    assert not task.check(query[1], "The answer is 4.").correct
    task.close()


def test_jsonl_splits(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "question": f"{i}+1?", "answer": str(i + 1)} for i in range(200)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    task = get_task("jsonl", {"path": str(path), "test_fraction": 0.25, "n_query": 1000})
    train, test = task.problems("query"), task.problems("test")
    assert len(train) + len(test) == 200 and 25 < len(test) < 75
    assert not {p.id for p in train} & {p.id for p in test}
    again = get_task("jsonl", {"path": str(path), "test_fraction": 0.25})
    assert [p.id for p in again.problems("test")] == [p.id for p in test]
    test_file = write_jsonl(tmp_path / "test.jsonl", [{"id": "t1", "question": "1?", "answer": "1"}])
    separate = get_task("jsonl", {"path": str(path), "test_path": str(test_file), "n_query": 10})
    assert len(separate.problems("query")) == 10 and [p.id for p in separate.problems("test")] == ["t1"]


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"id": 1, "question": "q", "answer": "1"}', '{"id": 2, "question": "q"'],
         "data.jsonl line 2: malformed JSON"),
        (['{"id": 1, "question": "q"}'], "data.jsonl line 1: missing field 'answer'"),
        (['{"question": "q", "answer": "1"}'], "data.jsonl line 1: missing field 'id'"),
        (['{"id": 1, "question": ["q"], "answer": "1"}'], "data.jsonl line 1: field 'question' must be a string"),
        (['{"id": true, "question": "q", "answer": "1"}'], "data.jsonl line 1: field 'id' must be a string or integer"),
        (['{"id": 1, "question": "q", "answer": "1"}', "", '{"id": 1, "question": "r", "answer": "2"}'],
         "data.jsonl line 3: field 'id': duplicate id '1' \\(first at .*data.jsonl line 1\\)"),
        (['{"id": 1, "question": "q", "answer": "1"}', '{"id": 2, "prompt": "p", "tests": ["assert 1"]}'],
         "data.jsonl line 2: a code row in a file of math rows"),
        (['{"id": 1, "prompt": "p", "tests": []}'], "data.jsonl line 1: field 'tests' must be a non-empty list"),
        (['{"id": 1, "text": "p"}'], "data.jsonl line 1: missing field 'question'"),
        (["[1, 2]"], "data.jsonl line 1: expected a JSON object"),
        ([], "data.jsonl: the file holds no rows"),
    ],
)
def test_jsonl_malformed_rows(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(VstarError, match=message):
        get_task("jsonl", {"path": str(path)})


def test_jsonl_file_errors(tmp_path: Path) -> None:
    with pytest.raises(VstarError, match="missing.jsonl: file not found"):
        get_task("jsonl", {"path": str(tmp_path / "missing.jsonl")})
    with pytest.raises(VstarError, match="task.options.path"):
        get_task("jsonl", {})
    train = write_jsonl(tmp_path / "train.jsonl", [{"id": 1, "question": "q", "answer": "1"}])
    test_rows = [{"id": 2, "question": "r", "answer": "2"}, {"id": 1, "question": "q", "answer": "1"}]
    test = write_jsonl(tmp_path / "test.jsonl", test_rows)
    with pytest.raises(VstarError, match="test.jsonl line 2: field 'id': test id '1' is also a training row"):
        get_task("jsonl", {"path": str(train), "test_path": str(test)})
    with pytest.raises(VstarError, match="not both"):
        get_task("jsonl", {"path": str(train), "test_path": str(test), "test_fraction": 0.5})
    (tmp_path / "list.json").write_text('{"id": 1}')
    with pytest.raises(VstarError, match="list.json: expected a JSON list of objects"):
        get_task("jsonl", {"path": str(tmp_path / "list.json")})
    with pytest.raises(VstarError, match="task.options.tests: unknown option"):
        get_task("jsonl", {"path": str(train), "tests": 1})


def test_jsonl_code_rows_use_check_programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def check_programs(programs, tests, setups, options=None):
        calls.append((list(programs), [list(t) for t in tests], list(setups), options))
        return [Verdict(True, "passed") for _ in programs]

    monkeypatch.setitem(sys.modules, "vstar.checkers.code", types.SimpleNamespace(check_programs=check_programs))
    rows = [
        {"id": "add", "prompt": "Write add(a, b).\n", "tests": ["assert add(1, 2) == 3"],
         "solution": "def add(a, b):\n    return a + b\n"},
        {"id": "inc", "prompt": "Write inc(a).\n", "tests": ["assert inc(1) == 2"], "setup": "import math"},
    ]
    path = write_jsonl(tmp_path / "code.jsonl", rows)
    task = get_task("jsonl", {"path": str(path), "code_options": {"timeout": 3}})
    assert task.stop == () and [p.id for p in task.problems("sft")] == ["add"]
    problems = task.problems("query")
    assert problems[0].prompt == "Write add(a, b).\n"
    verdicts = task.check_many(problems, ["def add(a, b): return a + b", "def inc(a): return a + 1"])
    assert all(verdict.correct for verdict in verdicts)
    assert calls == [(
        ["def add(a, b): return a + b", "def inc(a): return a + 1"],
        [["assert add(1, 2) == 3"], ["assert inc(1) == 2"]],
        ["", "import math"],
        {"timeout": 3},
    )]


def test_jsonl_stop_option_reaches_the_sampler(tmp_path: Path) -> None:
    """`vstar sample` cuts completions at the task's own stop strings (here the jsonl `stop` option)."""
    from vstar.cli import main
    from vstar.models.tiny import TinyModelSpec, build_tiny_model
    from vstar.rundir import read_jsonl

    model = build_tiny_model(tmp_path / "model", TinyModelSpec(32, 2, 2, 64, 128), seed=1)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"{i}+1?", "answer": str(i + 1)}) + "\n"
                            for i in range(20)))
    outputs = {}
    for name, stop in (("default", []), ("custom", ["--set", "task.options.stop=['=']"])):
        out = tmp_path / f"{name}.jsonl"
        assert main(["sample", "--set", "task.name=jsonl", "--set", f"task.options.path={data}",
                     "--set", "sampling.max_new_tokens=40", *stop, "--model", str(model), "--split", "query",
                     "--n", "8", "--out", str(out)]) == 0
        outputs[name] = [r["completion"] for r in read_jsonl(out)]
    assert any("=" in text for text in outputs["default"])  # the random model writes '=' now and then
    assert not any("=" in text for text in outputs["custom"])
