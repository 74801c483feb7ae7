"""MATH (Hendrycks et al., 2021) problems, by default the 500-problem MATH-500 test subset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from vstar.checkers.math_answer import last_boxed, strip_answer
from vstar.errors import VstarError
from vstar.tasks.base import Problem, Task, Verdict
from vstar.tasks.jsonl import (
    CHECK_OPTIONS,
    COUNT_OPTIONS,
    MATH_STOP,
    Row,
    accept_options,
    check_math,
    check_split,
    field_value,
    first_n,
    hash_fraction,
    make_math_pool,
    math_prompt,
    number_option,
    read_rows,
)

HUB_NAME = "HuggingFaceH4/MATH-500"
DEFAULT_TRAIN_FRACTION = 0.5


def gold_answer(row: Row) -> str:
    """The last ``\\boxed{...}`` of the row's solution, else its ``answer`` field."""
    solution = field_value(row, "solution", str, "a string", required=False)
    boxed = last_boxed(solution) if solution else None
    if boxed is not None and strip_answer(boxed[2]):
        return strip_answer(boxed[2])
    answer = field_value(row, "answer", (str, int, float), "a string or number", required=False)
    if answer is None or not strip_answer(str(answer)):
        raise VstarError(f"{row.where}: field 'answer' is missing and field 'solution' has no \\boxed{{...}} answer")
    return strip_answer(str(answer))


def row_level(row: Row) -> int | None:
    """The difficulty level: an integer, or MATH's original ``"Level 3"`` text."""
    level = row.data.get("level")
    if level is None or (isinstance(level, int) and not isinstance(level, bool)):
        return level
    match = re.fullmatch(r"(?:Level\s*)?(\d+)", str(level).strip())
    if not match:
        raise VstarError(f"{row.where}: field 'level' must be an integer or 'Level N', got {level!r}")
    return int(match.group(1))


def row_subject(row: Row) -> str | None:
    """The subject: MATH-500's ``subject`` field, or original MATH's ``type``."""
    subject = row.data.get("subject", row.data.get("type"))
    return None if subject is None else str(subject)


class MathTask(Task):
    """MATH-format problems (``problem``, ``solution``; optional ``answer``, ``level``,
    ``subject`` or ``type``, ``unique_id``). The paper uses MATH only to evaluate transfer.

    Options (``task.options``):
      path:     a .jsonl/.json/.parquet file of MATH rows. Default null:
                ``datasets.load_dataset("HuggingFaceH4/MATH-500", split="test")`` (network or cache).
      levels:   keep only these levels, e.g. ``[4, 5]`` (default null: all).
      subjects: keep only these subjects, e.g. ``["Algebra"]`` (default null: all).
      train_fraction: share of problems used for training (default 0.5). A problem is a
                training problem when ``hash_fraction(unique_id or problem text) <
                train_fraction``: fixed by the problem alone, never by file order or the
                filters, and train and test never overlap. Use 0 for evaluation only
                (all problems in test, sft/query empty).
      n_sft, n_query, n_test: keep the first n of each split (null: all).
      check_timeout: seconds per symbolic comparison (default 5); check_workers: worker
                processes for them (default: CPUs, at most 4).
      answer_extraction: ``strict`` or ``flexible``, as for ``gsm8k``.

    Splits: sft = training problems with gold solutions; query = the same problems;
    test = the rest. Gold answer: the last ``\\boxed{...}`` of the solution (else ``answer``).
    Ids: ``math500/<unique_id>`` (or ``math500/<row>``, 0-based, without one).
    Prompt: ``"Question: {problem}\\nAnswer:"``, as for GSM8K, so a GSM8K-trained
    generator transfers; the gold solution follows as ``" {solution}"``.
    """

    name = "math500"
    stop = MATH_STOP
    DEFAULTS = {"path": None, "levels": None, "subjects": None, "train_fraction": DEFAULT_TRAIN_FRACTION,
                **COUNT_OPTIONS, **CHECK_OPTIONS}

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.settings = accept_options(self.options, self.DEFAULTS)
        self.train_fraction = number_option(self.settings, "train_fraction", low=0.0, high=1.0)
        path = self.settings["path"]
        if path is not None and not isinstance(path, (str, Path)):
            raise VstarError(f"task.options.path: expected a file path or null, got {path!r}")
        self.levels = _list_option(self.settings, "levels", int, "integers")
        self.subjects = _list_option(self.settings, "subjects", str, "strings")
        self._split_cache: dict[str, list[Problem]] | None = None
        self._pool = make_math_pool(self.settings)

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if self._split_cache is None:
            self._split_cache = self._build_splits()
        if split == "test":
            return first_n(self._split_cache["test"], self.settings["n_test"])
        train = self._split_cache["train"]
        if split == "sft":
            return first_n([p for p in train if p.solution is not None], self.settings["n_sft"])
        return first_n(train, self.settings["n_query"])

    def check_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        return check_math(self._pool, problems, completions)

    def close(self) -> None:
        self._pool.close()

    def _build_splits(self) -> dict[str, list[Problem]]:
        rows = self._selected_rows(self._load_rows())
        splits: dict[str, list[Problem]] = {"train": [], "test": []}
        seen: dict[str, str] = {}
        for index, row in rows:
            problem = self._problem(index, row)
            if problem.id in seen:
                raise VstarError(
                    f"{row.where}: field 'unique_id': duplicate id {problem.id!r} (first at {seen[problem.id]})"
                )
            seen[problem.id] = row.where
            key = str(row.data.get("unique_id") or problem.meta["question"])
            splits["train" if hash_fraction(key) < self.train_fraction else "test"].append(problem)
        return splits

    def _selected_rows(self, rows: list[Row]) -> list[tuple[int, Row]]:
        """(row index, row) of the rows that pass the level and subject filters."""
        if self.subjects is not None:
            present = {row_subject(row) for row in rows}
            missing = [subject for subject in self.subjects if subject not in present]
            if missing:
                known = ", ".join(sorted(str(s) for s in present if s is not None)) or "none"
                raise VstarError(f"task.options.subjects: {missing} not in the data (subjects present: {known})")
        selected = []
        for index, row in enumerate(rows):
            if self.levels is not None:
                level = row_level(row)
                if level is None:
                    raise VstarError(f"{row.where}: missing field 'level' (needed by task.options.levels)")
                if level not in self.levels:
                    continue
            if self.subjects is not None and row_subject(row) not in self.subjects:
                continue
            selected.append((index, row))
        return selected

    @staticmethod
    def _problem(index: int, row: Row) -> Problem:
        question = field_value(row, "problem", str, "a string")
        solution = field_value(row, "solution", str, "a string", required=False)
        unique_id = row.data.get("unique_id")
        return Problem(
            id=f"math500/{unique_id if unique_id is not None else index}",
            prompt=math_prompt(question),
            solution=None if solution is None else " " + solution.strip(),
            answer=gold_answer(row),
            meta={"question": question, "level": row_level(row), "subject": row_subject(row)},
        )

    def _load_rows(self) -> list[Row]:
        if self.settings["path"] is not None:
            return read_rows(self.settings["path"])
        try:
            import datasets

            records = datasets.load_dataset(HUB_NAME, split="test")
        except Exception as error:
            raise VstarError(
                f"task.options.path: not set, and loading '{HUB_NAME}' from the Hugging Face hub failed "
                f"({type(error).__name__}: {error}). Set path to a MATH-format .jsonl file."
            ) from None
        return [Row(f"{HUB_NAME} test row {number}", dict(record)) for number, record in enumerate(records, 1)]


def _list_option(settings: Mapping[str, Any], key: str, item_type: type, expected: str) -> list | None:
    value = settings.get(key)
    if value is None:
        return None
    valid = isinstance(value, list) and value and all(
        isinstance(item, item_type) and not isinstance(item, bool) for item in value
    )
    if not valid:
        raise VstarError(f"task.options.{key}: expected a non-empty list of {expected} or null, got {value!r}")
    return list(value)
