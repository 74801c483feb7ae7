"""What a checker says about one completion (math answer checks, unit tests in the sandbox)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """The checker's judgement of one completion.

    ``status`` is one of ``passed``, ``failed``, ``timeout``, ``error``, ``no_answer``.
    ``answer`` is the normalised final answer used for majority voting (``None``
    when the completion has none, or the task has no notion of one), and
    ``answer_correct`` says whether that answer, picked by a vote, would be right.
    """

    correct: bool
    status: str
    answer: str | None = None
    answer_correct: bool = False
    reason: str = ""
    tests: tuple[str, ...] = ()  # per-test verdicts where the task has several

    def to_record(self) -> dict:
        return {
            "correct": self.correct,
            "status": self.status,
            "answer": self.answer,
            "answer_correct": self.answer_correct,
            "reason": self.reason,
            "tests": list(self.tests),
        }
