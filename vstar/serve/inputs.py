"""Rows of the input files of ``vstar score`` and ``vstar best-of-n``, checked before any model loads.

The rows come as (where, row) pairs, ``where`` naming the file and line (``commands`` reads
JSONL, JSON or Parquet files with ``tasks.jsonl.read_rows``). Scoring rows have one of two
shapes (they may be mixed):
  - one prompt and its candidates: ``{"prompt": str, "completions": [str, ...], "finished": bool
    or [bool, ...]}`` (``finished`` optional, default true: each completion ended, so its end
    token is scored);
  - one candidate, as the run's samples.jsonl / eval/candidates.jsonl hold them:
    ``{"prompt": str, "completion": str, "finished": bool}`` (+ problem_id, sample_index, ...).
Best-of-n rows: ``{"prompt": str, ...}``. Other fields are kept in the output.

A malformed row fails with the file, the line and the field (``VstarError``: exit code 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from vstar.errors import VstarError


@dataclass(frozen=True)
class ScoreRow:
    """One input row to score: its prompt, completions and finished flags (one or many)."""

    record: dict  # the row as read
    prompt: str
    completions: tuple[str, ...]
    finished: tuple[bool, ...]
    grouped: bool  # a "completions" row (else one "completion")


def string_field(row: dict, name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        got = "missing" if name not in row else f"a {type(value).__name__}"
        raise VstarError(f"{where}: field '{name}': expected a string, got {got}.")
    return value


def score_row(row: dict, where: str) -> ScoreRow:
    """A checked scoring row (either shape)."""
    prompt = string_field(row, "prompt", where)
    if "completions" in row:
        completions = row["completions"]
        if not isinstance(completions, list):
            raise VstarError(f"{where}: field 'completions': expected a list of strings, "
                             f"got a {type(completions).__name__}.")
        for index, completion in enumerate(completions):
            if not isinstance(completion, str):
                raise VstarError(f"{where}: field 'completions[{index}]': expected a string, "
                                 f"got a {type(completion).__name__}.")
        return ScoreRow(row, prompt, tuple(completions), finished_field(row, len(completions), where), True)
    if "completion" in row:
        completion = string_field(row, "completion", where)
        finished = row.get("finished", True)
        if not isinstance(finished, bool):
            raise VstarError(f"{where}: field 'finished': expected true or false, got {finished!r}.")
        return ScoreRow(row, prompt, (completion,), (finished,), False)
    raise VstarError(f"{where}: expected field 'completions' (a list of strings) or 'completion' (a string).")


def finished_field(row: dict, count: int, where: str) -> tuple[bool, ...]:
    """``finished`` of a grouped row: absent (all true), one bool, or one bool per completion."""
    finished = row.get("finished", True)
    if isinstance(finished, bool):
        return (finished,) * count
    if isinstance(finished, list) and len(finished) == count and all(isinstance(f, bool) for f in finished):
        return tuple(finished)
    raise VstarError(f"{where}: field 'finished': expected true/false or a list of {count} of them "
                     f"(one per completion), got {finished!r}.")


def score_rows(rows: list[tuple[str, dict]]) -> list[ScoreRow]:
    """Checked scoring rows from (where, row) pairs."""
    return [score_row(row, where) for where, row in rows]


def prompt_rows(rows: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Best-of-n rows, (where, row), each checked to hold a string ``prompt``."""
    for where, row in rows:
        string_field(row, "prompt", where)
    return rows
