"""MBPP (Austin et al., 2021): short Python programming problems checked by three asserts each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from vstar.checkers.code import SANDBOX_TASK_OPTIONS, CodeChecker, task_sandbox_options
from vstar.errors import VstarError
from vstar.tasks.base import Problem, Task, Verdict
from vstar.tasks.jsonl import (
    COUNT_OPTIONS,
    Row,
    accept_options,
    check_split,
    count_option,
    field_value,
    first_n,
    read_rows,
)

HUB_NAME = "google-research-datasets/mbpp"
END_MARKER = "[DONE]"
FEW_SHOT_IDS = (2, 3, 4, 1, 5, 6, 7, 8, 9, 10)  # 2-4: the three-shot prompt of Austin et al. (2021)
TEST_IDS = range(11, 511)
VALIDATION_IDS = range(511, 601)
TRAIN_IDS = range(601, 975)
_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def mbpp_prompt(text: str, tests: Sequence[str]) -> str:
    """Austin et al.'s prompt for one problem; the completion follows ``[BEGIN]\\n``."""
    listed = "\n".join(tests)
    return (
        f"You are an expert Python programmer, and here is your task: {text.strip()} "
        f"Your code should pass these tests:\n\n{listed}\n[BEGIN]\n"
    )


def clean_completion(completion: str) -> str:
    """The program in a completion: up to ``[DONE]``, out of a markdown fence if there is one."""
    program = completion.split(END_MARKER, 1)[0]
    fenced = _FENCE.search(program)
    if fenced:
        program = fenced.group(1)
    program = program.strip("\n")
    if program.lstrip().startswith("[BEGIN]"):
        program = program.lstrip()[len("[BEGIN]") :].lstrip("\n")
    return program


def _text(value: str) -> str:
    return value.replace("\r\n", "\n")


class MBPPTask(Task):
    """MBPP: write a Python function from a one-sentence description and three asserts.

    Options (``task.options``):
      data_path: a local MBPP ``.jsonl`` (fields ``task_id``, ``text``, ``code``, ``test_list``,
                 ``test_setup_code``), e.g. ``../shared/data/mbpp/mbpp.jsonl``. Default null:
                 ``datasets.load_dataset("google-research-datasets/mbpp", "full")`` (needs the
                 network or the Hugging Face cache).
      few_shot:  solved examples shown before each problem (default 3, at most 10): task ids
                 2, 3, 4 (Austin et al.'s three-shot prompt), then 1, 5, 6, ..., 10 — the ids
                 MBPP reserves for prompting, so no train or test problem appears in a prompt.
      n_sft, n_query, n_test: keep the first n of each split (null: all).
      isolation, timeout, memory_mb, workers, bwrap_path, max_processes, file_size_mb,
      output_kb: the code sandbox (``vstar.sandbox.SandboxOptions``; defaults:
                 bubblewrap, 5 s per program, 1024 MiB, one worker per CPU).

    Splits (the standard split by ``task_id``): sft = train ids 601-974 with the reference
    ``code`` as the gold solution; query = the same 374 problems; test = ids 11-510 (500).
    The validation ids 511-600 are not used. Ids: ``mbpp/<task_id>``.

    Prompt (Austin et al., 2021): ``You are an expert Python programmer, and here is your
    task: {text} Your code should pass these tests:\\n\\n{asserts}\\n[BEGIN]\\n``; each
    few-shot example is that prompt, its code and ``\\n[DONE]``, followed by a blank line.
    The completion is the program and ends with ``[DONE]`` (the stop string). Checking
    keeps the text before ``[DONE]``, takes the inside of a markdown code fence if there is
    one, runs the program, then ``test_setup_code`` (after the code: in tasks 367 and 927
    it builds trees from the ``Node`` class the solution defines), then the three asserts
    in ``test_list``; correct = all three pass.
    """

    name = "mbpp"
    stop = (END_MARKER,)
    DEFAULTS = {"data_path": None, "few_shot": 3, **COUNT_OPTIONS, **SANDBOX_TASK_OPTIONS}

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.settings = accept_options(self.options, self.DEFAULTS)
        few_shot = count_option(self.settings, "few_shot")
        if few_shot is None or few_shot > len(FEW_SHOT_IDS):
            expected = f"an integer from 0 to {len(FEW_SHOT_IDS)}"
            raise VstarError(f"task.options.few_shot: expected {expected}, got {few_shot!r}")
        data_path = self.settings["data_path"]
        if data_path is not None and not isinstance(data_path, (str, Path)):
            raise VstarError(f"task.options.data_path: expected a .jsonl file path or null, got {data_path!r}")
        self._checker = CodeChecker(task_sandbox_options(self.settings), where="task.options")
        self._by_id: dict[int, dict[str, Any]] | None = None

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        ids = TEST_IDS if split == "test" else TRAIN_IDS
        rows = [row for task_id, row in sorted(self._rows().items()) if task_id in ids]
        prefix = self._few_shot_prefix()
        problems = [self._problem(row, prefix, with_solution=split == "sft") for row in rows]
        return first_n(problems, self.settings[f"n_{split}"])

    def reference_problems(self) -> list[Problem]:
        """Every row of the data (all task ids, no few-shot prefix) with its reference ``code``
        as the solution: for checking the data set and the checker, not for training."""
        return [self._problem(row, "", with_solution=True) for _, row in sorted(self._rows().items())]

    def check_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems for {len(completions)} completions")
        programs = [self._program(problem, completion) for problem, completion in zip(problems, completions)]
        tests = [list(problem.meta["tests"]) for problem in problems]
        return self._checker.check(programs, tests, [""] * len(programs))

    def close(self) -> None:
        self._checker.close()

    @staticmethod
    def _program(problem: Problem, completion: str) -> str:
        setup = problem.meta.get("setup", "")
        program = clean_completion(completion)
        return f"{program}\n\n{setup}\n" if setup.strip() else program + "\n"

    @staticmethod
    def _problem(row: dict[str, Any], prefix: str, with_solution: bool) -> Problem:
        return Problem(
            id=f"mbpp/{row['task_id']}",
            prompt=prefix + mbpp_prompt(row["text"], row["test_list"]),
            solution=row["code"] + "\n" + END_MARKER if with_solution else None,
            meta={"task_id": row["task_id"], "tests": tuple(row["test_list"]), "setup": row["test_setup_code"]},
        )

    def _few_shot_prefix(self) -> str:
        rows = self._rows()
        examples = []
        for task_id in FEW_SHOT_IDS[: self.settings["few_shot"]]:
            if task_id not in rows:
                raise VstarError(f"task.options.few_shot: the data has no task_id {task_id} (needed for the prompt)")
            row = rows[task_id]
            examples.append(mbpp_prompt(row["text"], row["test_list"]) + row["code"] + "\n" + END_MARKER + "\n\n")
        return "".join(examples)

    def _rows(self) -> dict[int, dict[str, Any]]:
        """task_id -> row with clean fields (``\\r\\n`` -> ``\\n``), loaded once."""
        if self._by_id is None:
            by_id: dict[int, dict[str, Any]] = {}
            for row in self._load_rows():
                clean = _clean_row(row)
                if clean["task_id"] in by_id:
                    raise VstarError(f"{row.where}: field 'task_id': duplicate id {clean['task_id']}")
                by_id[clean["task_id"]] = clean
            self._by_id = by_id
        return self._by_id

    def _load_rows(self) -> list[Row]:
        data_path = self.settings["data_path"]
        if data_path is not None:
            return read_rows(data_path)
        try:
            import datasets

            splits = datasets.load_dataset(HUB_NAME, "full")
        except Exception as error:
            raise VstarError(
                f"task.options.data_path: not set, and loading '{HUB_NAME}' from the Hugging Face hub failed "
                f"({type(error).__name__}: {error}). Set data_path to a local mbpp.jsonl."
            ) from None
        return [
            Row(f"{HUB_NAME} {name} row {number}", dict(record))
            for name in splits
            for number, record in enumerate(splits[name], 1)
        ]


def _clean_row(row: Row) -> dict[str, Any]:
    """The fields MBPP checking needs, validated (errors name the file line and field)."""
    task_id = field_value(row, "task_id", int, "an integer")
    tests = field_value(row, "test_list", list, "a non-empty list of assert statements")
    if not tests or not all(isinstance(test, str) and test.strip() for test in tests):
        raise VstarError(f"{row.where}: field 'test_list' must be a non-empty list of assert statements")
    setup = field_value(row, "test_setup_code", str, "a string", required=False) or ""
    return {
        "task_id": task_id,
        "text": field_value(row, "text", str, "a string"),
        "code": _text(field_value(row, "code", str, "a string")).strip("\n"),
        "test_list": [_text(test).strip() for test in tests],
        "test_setup_code": _text(setup),
    }
