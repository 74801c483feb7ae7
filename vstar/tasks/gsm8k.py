"""GSM8K (Cobbe et al., 2021): grade-school math word problems with worked solutions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from vstar.checkers.math_answer import canonical_answer
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
    count_option,
    field_value,
    first_n,
    make_math_pool,
    math_prompt,
    read_rows,
)

HUB_NAME = "openai/gsm8k"
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def gold_solution(answer_field: str, where: str) -> tuple[str, str]:
    """(solution, final answer) from a GSM8K ``answer`` field.

    The solution drops the calculator annotations ``<<48/2=24>>`` and ends with the line
    ``The answer is X.`` in place of ``#### X``: the format the generator is trained to end with.
    """
    steps, marker, final = answer_field.rpartition("####")
    final = final.strip()
    if not marker or not final:
        raise VstarError(f"{where}: field 'answer' must end with '#### <final answer>'")
    steps = _CALCULATOR.sub("", steps).strip()
    last_line = f"The answer is {final}."
    return (f"{steps}\n{last_line}" if steps else last_line), final


class GSM8KTask(Task):
    """GSM8K: 7,473 training and 1,319 test problems; the answer is a number.

    Options (``task.options``):
      data_dir: folder with GSM8K's ``train.jsonl`` and ``test.jsonl`` (fields ``question``,
                ``answer`` = steps + ``#### X``). Default null: ``datasets.load_dataset(
                "openai/gsm8k", "main")`` (needs the network or the Hugging Face cache).
      few_shot: number of worked training examples shown before each question (default 0).
                They are the last ``few_shot`` training rows, left out of sft and query.
      n_sft, n_query, n_test: keep the first n of each split (null: all).
      check_timeout: seconds per symbolic comparison (default 5); check_workers: worker
                processes for them (default: CPUs, at most 4). Plain numbers, GSM8K's
                case, are compared in-process without workers.
      answer_extraction: how the final answer is read (``vstar.checkers.math_extract``):
                ``strict`` (boxes, ``####``, answer markers, a final ``= X`` or concluding
                line) or ``flexible`` (strict, else the completion's last number).

    Splits: sft = training problems with their gold solutions; query = the same training
    problems (the paper samples D_query on the GSM8K training set); test = the test set.
    Ids: ``gsm8k/train/<row>`` and ``gsm8k/test/<row>`` (0-based row in the file).
    Prompt: ``"Question: {question}\\nAnswer:"`` (after the few-shot examples, separated by
    blank lines); the gold solution follows as ``" {steps}\\nThe answer is {X}."`` with the
    calculator annotations removed. Sampling stops at ``"\\nQuestion:"``.
    """

    name = "gsm8k"
    stop = MATH_STOP
    DEFAULTS = {"data_dir": None, "few_shot": 0, **COUNT_OPTIONS, **CHECK_OPTIONS}

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.settings = accept_options(self.options, self.DEFAULTS)
        if count_option(self.settings, "few_shot") is None:
            raise VstarError("task.options.few_shot: expected an integer >= 0, got null")
        data_dir = self.settings["data_dir"]
        if data_dir is not None and not isinstance(data_dir, (str, Path)):
            raise VstarError(f"task.options.data_dir: expected a folder path or null, got {data_dir!r}")
        self._problems: dict[str, list[Problem]] = {}  # "train"/"test" -> problems, built once
        self._row_cache: dict[str, list[Row]] = {}  # "train"/"test" -> rows of the file
        self._pool = make_math_pool(self.settings)

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if split == "test":
            return first_n(self._file_problems("test"), self.settings["n_test"])
        train = self._file_problems("train")
        few_shot = self.settings["few_shot"]
        if few_shot > len(train):
            raise VstarError(f"task.options.few_shot: {few_shot} exceeds the {len(train)} training problems")
        train = train[: len(train) - few_shot]
        return first_n(train, self.settings["n_sft" if split == "sft" else "n_query"])

    def check_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        return check_math(self._pool, problems, completions)

    def close(self) -> None:
        self._pool.close()

    def _file_problems(self, part: str) -> list[Problem]:
        """Problems of GSM8K's ``train`` or ``test`` file, prompts with the few-shot prefix."""
        if part not in self._problems:
            prefix = self._few_shot_prefix() if self.settings["few_shot"] else ""
            rows = self._rows(part)
            self._problems[part] = [self._problem(part, index, row, prefix) for index, row in enumerate(rows)]
        return self._problems[part]

    def _few_shot_prefix(self) -> str:
        rows = self._rows("train")
        examples = []
        for row in rows[len(rows) - self.settings["few_shot"] :]:
            question = field_value(row, "question", str, "a string")
            solution, _ = gold_solution(field_value(row, "answer", str, "a string"), row.where)
            examples.append(f"{math_prompt(question)} {solution}")
        return "".join(example + "\n\n" for example in examples)

    @staticmethod
    def _problem(part: str, index: int, row: Row, prefix: str) -> Problem:
        question = field_value(row, "question", str, "a string")
        solution, final = gold_solution(field_value(row, "answer", str, "a string"), row.where)
        return Problem(
            id=f"gsm8k/{part}/{index}",
            prompt=prefix + math_prompt(question),
            solution=" " + solution,
            answer=canonical_answer(final),
            meta={"question": question},
        )

    def _rows(self, part: str) -> list[Row]:
        if part not in self._row_cache:
            self._row_cache[part] = self._load_rows(part)
        return self._row_cache[part]

    def _load_rows(self, part: str) -> list[Row]:
        data_dir = self.settings["data_dir"]
        if data_dir is not None:
            return read_rows(Path(data_dir).expanduser() / f"{part}.jsonl")
        try:
            import datasets

            records = datasets.load_dataset(HUB_NAME, "main", split=part)
        except Exception as error:
            raise VstarError(
                f"task.options.data_dir: not set, and loading '{HUB_NAME}' from the Hugging Face hub failed "
                f"({type(error).__name__}: {error}). Set data_dir to a folder with train.jsonl and test.jsonl."
            ) from None
        return [Row(f"{HUB_NAME} {part} row {number}", dict(record)) for number, record in enumerate(records, 1)]
