"""The ``jsonl`` task: the user's own math or code problems from a JSON, JSONL or Parquet file.

Also holds what the file-based tasks (gsm8k, math500, jsonl) share: reading rows with
locations for error messages, option checking, the deterministic split, math checking.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from vstar.checkers.math_answer import EXTRACTION_MODES, strip_answer
from vstar.checkers.math_extract import DEFAULT_EXTRACTION
from vstar.checkers.math_pool import DEFAULT_TIMEOUT_S, MathCheckPool
from vstar.errors import VstarError
from vstar.tasks.base import SPLITS, VALIDATION, Problem, Task, Verdict

MATH_STOP = ("\nQuestion:",)
COUNT_OPTIONS = {"n_sft": None, "n_query": None, "n_test": None}
CHECK_OPTIONS = {"check_timeout": DEFAULT_TIMEOUT_S, "check_workers": None, "answer_extraction": DEFAULT_EXTRACTION}


@dataclass(frozen=True)
class Row:
    """One record of a data file: ``where`` names it in messages ("a.jsonl line 7"), ``data`` holds it."""

    where: str
    data: Mapping[str, Any]


def read_rows(path: str | Path) -> list[Row]:
    """The records of a ``.jsonl``, ``.json`` (a list of objects) or ``.parquet`` file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise VstarError(f"{path}: file not found (expected a .jsonl, .json or .parquet data file)")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        rows = _read_parquet(path)
    elif suffix == ".json":
        rows = _read_json(path)
    else:
        rows = _read_jsonl(path)
    if not rows:
        raise VstarError(f"{path}: the file holds no rows")
    return rows


def _read_jsonl(path: Path) -> list[Row]:
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as error:
                raise VstarError(f"{path} line {number}: malformed JSON ({error.msg}, column {error.colno})") from None
            if not isinstance(data, dict):
                raise VstarError(f"{path} line {number}: expected a JSON object, got {type(data).__name__}")
            rows.append(Row(f"{path} line {number}", data))
    return rows


def _read_json(path: Path) -> list[Row]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise VstarError(f"{path} line {error.lineno}: malformed JSON ({error.msg})") from None
    if not isinstance(items, list):
        raise VstarError(f"{path}: expected a JSON list of objects, got {type(items).__name__}")
    rows = []
    for number, data in enumerate(items, start=1):
        if not isinstance(data, dict):
            raise VstarError(f"{path} item {number}: expected a JSON object, got {type(data).__name__}")
        rows.append(Row(f"{path} item {number}", data))
    return rows


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet

    try:
        records = pyarrow.parquet.read_table(path).to_pylist()
    except Exception as error:
        raise VstarError(f"{path}: not a readable Parquet file ({error})") from None
    return [Row(f"{path} row {number}", data) for number, data in enumerate(records, start=1)]


def field_value(row: Row, name: str, types: type | tuple[type, ...], expected: str, required: bool = True) -> Any:
    """``row.data[name]``, checked against ``types``; None when absent and not ``required``."""
    value = row.data.get(name)
    if value is None:
        if required:
            raise VstarError(f"{row.where}: missing field '{name}' (expected {expected})")
        return None
    if isinstance(value, bool) or not isinstance(value, types):
        raise VstarError(f"{row.where}: field '{name}' must be {expected}, got {type(value).__name__} {value!r:.60}")
    return value


def accept_options(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by ``options``; an unknown key raises naming ``task.options.<key>``."""
    for key in options:
        if key not in defaults:
            raise VstarError(f"task.options.{key}: unknown option. Accepted: {', '.join(sorted(defaults))}")
    merged = {**defaults, **options}
    for key in COUNT_OPTIONS:
        if key in merged:
            count_option(merged, key)
    if "check_timeout" in merged:
        number_option(merged, "check_timeout", low=0.0, low_inclusive=False)
    if merged.get("check_workers") is not None:
        count_option(merged, "check_workers", minimum=1)
    if "answer_extraction" in merged and merged["answer_extraction"] not in EXTRACTION_MODES:
        raise VstarError(
            f"task.options.answer_extraction: expected one of {', '.join(EXTRACTION_MODES)}, "
            f"got {merged['answer_extraction']!r}"
        )
    return merged


def count_option(options: Mapping[str, Any], key: str, minimum: int = 0) -> int | None:
    """The integer option ``key`` (None allowed), at least ``minimum``."""
    value = options.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise VstarError(f"task.options.{key}: expected an integer >= {minimum} or null, got {value!r}")
    return value


def number_option(
    options: Mapping[str, Any], key: str, low: float, high: float | None = None, low_inclusive: bool = True
) -> float:
    """The numeric option ``key``, checked to lie in its range."""
    value = options.get(key)
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    valid = valid and (value >= low if low_inclusive else value > low) and (high is None or value <= high)
    if not valid:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and <= {high}" if high is not None else "")
        raise VstarError(f"task.options.{key}: expected a number {bound}, got {value!r}")
    return float(value)


def first_n(problems: list[Problem], count: int | None) -> list[Problem]:
    return problems if count is None else problems[:count]


def check_split(split: str) -> None:
    if split == VALIDATION:
        raise VstarError("this task has no validation split ('val'); the embedded task has one (task.options.n_val)")
    if split not in SPLITS:
        raise VstarError(f"split '{split}': expected one of {', '.join(SPLITS)}")


def hash_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (first 8 bytes of its SHA-256): the split coin."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def math_prompt(question: str) -> str:
    return f"Question: {question.strip()}\nAnswer:"


def make_math_pool(options: Mapping[str, Any]) -> MathCheckPool:
    """A (lazily started) checker pool from the ``check_timeout`` / ``check_workers`` /
    ``answer_extraction`` options."""
    return MathCheckPool(workers=options.get("check_workers"), timeout=float(options["check_timeout"]),
                         extraction=options.get("answer_extraction", DEFAULT_EXTRACTION))


def check_math(pool: MathCheckPool, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
    """Verdicts of ``completions`` against the problems' gold answers."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems for {len(completions)} completions")
    for problem in problems:
        if problem.answer is None:
            raise VstarError(f"problem {problem.id}: no gold answer to check against")
    return pool.check_many([problem.answer for problem in problems], completions)  # type: ignore[misc]


class JsonlTask(Task):
    """Your own problems from a ``.jsonl`` / ``.json`` (list of objects) / ``.parquet`` file.

    Rows are of one kind per task:
      - math: ``{id, question, answer[, solution]}``; prompt ``"Question: {question}\\nAnswer:"``;
        checked by the math checker (``vstar.checkers.math_answer``);
      - code: ``{id, prompt, tests[, setup, solution]}``; the prompt is used verbatim, the
        completion must be the whole program; ``tests`` are Python statements (asserts)
        run after ``setup`` by ``vstar.checkers.code.check_programs``.
    ``id`` is a string or integer, unique across the train and test files.

    Options (``task.options``):
      path:          the training file (required).
      test_path:     a file of test rows (same kind); or
      test_fraction: share of ``path``'s rows held out for test (default 0): a row is a
                     test row when ``hash_fraction(str(id)) < test_fraction``, so the split
                     depends only on ids, not on file order. Not both.
      n_sft, n_query, n_test: keep the first n of each split (null: all).
      stop:          stop strings for sampling (default ``["\\nQuestion:"]`` for math, none for code).
      check_timeout: seconds per math comparison (default 5); check_workers: math worker
                     processes (default: CPUs, at most 4).
      answer_extraction: ``strict`` or ``flexible`` (``vstar.checkers.math_extract``).
      code_options:  mapping passed to ``check_programs`` as ``options`` (code rows).
    Splits: sft = training rows that have a ``solution``; query = all training rows;
    test = the test rows.
    """

    name = "jsonl"
    stop = MATH_STOP
    DEFAULTS = {"path": None, "test_path": None, "test_fraction": 0.0, "stop": None, "code_options": None,
                **COUNT_OPTIONS, **CHECK_OPTIONS}

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.settings = accept_options(self.options, self.DEFAULTS)
        self._validate_settings()
        train_rows = read_rows(self.settings["path"])
        self.kind = _row_kind(train_rows[0])
        train = [self._problem(row) for row in train_rows]
        _reject_duplicate_ids(train, train_rows)
        self.train, self.test = self._split(train, train_rows)
        stop = self.settings["stop"]
        default_stop = MATH_STOP if self.kind == "math" else ()
        self.stop = tuple(stop) if stop is not None else default_stop  # type: ignore[misc]
        self._pool = make_math_pool(self.settings)

    def _validate_settings(self) -> None:
        settings = self.settings
        if not isinstance(settings["path"], (str, Path)):
            raise VstarError("task.options.path: expected the path of a .jsonl, .json or .parquet file")
        if settings["test_path"] is not None and not isinstance(settings["test_path"], (str, Path)):
            raise VstarError("task.options.test_path: expected a file path or null")
        fraction = number_option(settings, "test_fraction", low=0.0, high=1.0)
        if settings["test_path"] is not None and fraction > 0:
            raise VstarError("task.options.test_fraction: give test_path or test_fraction, not both")
        stop = settings["stop"]
        if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) and s for s in stop)):
            raise VstarError(f"task.options.stop: expected a list of non-empty strings, got {stop!r}")
        if settings["code_options"] is not None and not isinstance(settings["code_options"], Mapping):
            raise VstarError("task.options.code_options: expected a mapping")

    def _split(self, train: list[Problem], train_rows: list[Row]) -> tuple[list[Problem], list[Problem]]:
        test_path = self.settings["test_path"]
        if test_path is None:
            fraction = float(self.settings["test_fraction"])
            kept = [problem for problem in train if hash_fraction(problem.id) >= fraction]
            held_out = [problem for problem in train if hash_fraction(problem.id) < fraction]
            return kept, held_out
        test_rows = read_rows(test_path)
        test = [self._problem(row) for row in test_rows]
        _reject_duplicate_ids(test, test_rows)
        train_where = {problem.id: row.where for problem, row in zip(train, train_rows)}
        for problem, row in zip(test, test_rows):
            if problem.id in train_where:
                raise VstarError(
                    f"{row.where}: field 'id': test id {problem.id!r} is also a training row ({train_where[problem.id]})"
                )
        return train, test

    def _problem(self, row: Row) -> Problem:
        kind = _row_kind(row)
        if kind != self.kind:
            raise VstarError(f"{row.where}: a {kind} row in a file of {self.kind} rows")
        problem_id = str(field_value(row, "id", (str, int), "a string or integer"))
        solution = field_value(row, "solution", str, "a string", required=False)
        if kind == "math":
            question = field_value(row, "question", str, "a string")
            answer = field_value(row, "answer", (str, int, float), "a string or number")
            gold = strip_answer(str(answer))
            if not gold:
                raise VstarError(f"{row.where}: field 'answer' is empty")
            completion = None if solution is None else " " + solution.strip()
            return Problem(problem_id, math_prompt(question), completion, gold, {"question": question})
        prompt = field_value(row, "prompt", str, "a string")
        tests = field_value(row, "tests", list, "a non-empty list of strings")
        if not tests or not all(isinstance(test, str) for test in tests):
            raise VstarError(f"{row.where}: field 'tests' must be a non-empty list of strings")
        setup = field_value(row, "setup", str, "a string", required=False) or ""
        return Problem(problem_id, prompt, solution, None, {"tests": tuple(tests), "setup": setup})

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if split == "test":
            return first_n(self.test, self.settings["n_test"])
        if split == "sft":
            return first_n([p for p in self.train if p.solution is not None], self.settings["n_sft"])
        return first_n(self.train, self.settings["n_query"])

    def check_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        if self.kind == "math":
            return check_math(self._pool, problems, completions)
        from vstar.checkers.code import check_programs

        tests = [problem.meta["tests"] for problem in problems]
        setups = [problem.meta["setup"] for problem in problems]
        return check_programs(list(completions), tests, setups, self.settings["code_options"])

    def close(self) -> None:
        self._pool.close()


def _row_kind(row: Row) -> str:
    if "question" in row.data:
        return "math"
    if "prompt" in row.data:
        return "code"
    raise VstarError(
        f"{row.where}: missing field 'question' (math rows: id, question, answer) "
        "or 'prompt' (code rows: id, prompt, tests)"
    )


def _reject_duplicate_ids(problems: list[Problem], rows: list[Row]) -> None:
    seen: dict[str, str] = {}
    for problem, row in zip(problems, rows):
        if problem.id in seen:
            raise VstarError(f"{row.where}: field 'id': duplicate id {problem.id!r} (first at {seen[problem.id]})")
        seen[problem.id] = row.where
