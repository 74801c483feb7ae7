"""The task interface: problems with prompts, and a checker for completions.

A task supplies three splits:
  - ``sft``:   problems with a gold ``solution`` (D_SFT),
  - ``query``: training problems the generator samples on (D_query); they need
               whatever the checker needs (an answer, unit tests), not a solution,
  - ``test``:  held-out problems for evaluation.

A task may also supply ``val``: problems from the training distribution that no stage trains
on, for choosing settings without looking at test (``vstar evaluate --split val``). Tasks
without one raise ``VstarError`` when asked for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from vstar.checkers.verdict import Verdict

SPLITS = ("sft", "query", "test")
VALIDATION = "val"


@dataclass(frozen=True)
class Problem:
    """One problem. ``prompt`` is the exact text the model is conditioned on."""

    id: str
    prompt: str
    solution: str | None = None  # gold completion (what follows the prompt), if known
    answer: str | None = None  # gold final answer, for answer-checked tasks
    meta: Mapping[str, Any] = field(default_factory=dict)  # task-specific (tests, entry point...)


class Task(ABC):
    """A source of problems and a checker. Subclasses set ``name`` and ``stop``."""

    name: ClassVar[str]
    #: strings that end a completion during sampling (besides the EOS token)
    stop: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Mapping[str, Any] | None = None):
        self.options = dict(options or {})

    @abstractmethod
    def problems(self, split: str) -> list[Problem]:
        """The problems of ``split`` (one of ``SPLITS``), in a fixed order."""

    @abstractmethod
    def check_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        """Judge ``completions[i]`` as an answer to ``problems[i]``."""

    def check(self, problem: Problem, completion: str) -> Verdict:
        return self.check_many([problem], [completion])[0]

    def close(self) -> None:
        """Release worker pools or sandboxes the task holds."""


class SplitAsTest(Task):
    """``task`` with another of its splits (e.g. ``val``) in the place of ``test``, so the
    evaluation stages run on it unchanged; checking and closing go to ``task``."""

    def __init__(self, task: Task, split: str):
        super().__init__(task.options)
        self.task, self.split = task, split
        self.name, self.stop = task.name, task.stop

    def problems(self, split: str) -> list[Problem]:
        return self.task.problems(self.split if split == "test" else split)

    def check_many(self, problems: Sequence[Problem], completions: Sequence[str]) -> list[Verdict]:
        return self.task.check_many(problems, completions)

    def close(self) -> None:
        self.task.close()
