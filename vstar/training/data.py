"""Training examples as token ids, built by ``SequenceFormat`` (the ids sampling and scoring use).

TRL gets these ids as they are: it neither re-tokenizes nor truncates them. An example
longer than ``max_length`` is not cut (a cut completion loses its end token, and the model
would not learn to stop): it is left out and counted in the stage summary, with a warning;
a stage with nothing left fails with a message that says which setting to raise.
"""

from __future__ import annotations

import logging
import statistics
from typing import Sequence

from vstar.errors import VstarError
from vstar.models.sequence import SequenceFormat

log = logging.getLogger("vstar")


def sft_rows(fmt: SequenceFormat, examples: Sequence[dict], max_length: int, setting: str) -> tuple[list[dict], dict]:
    """``{input_ids, completion_mask}`` per example ({"prompt", "completion"[, "finished"]}) and counts.
    ``setting`` names the max_length field for messages (e.g. ``generator.max_length``)."""
    rows, lengths = [], []
    for example in examples:
        ids, start = fmt.encode(example["prompt"], example["completion"], example.get("finished", True))
        lengths.append(len(ids))
        if len(ids) <= max_length:
            rows.append({"input_ids": ids, "completion_mask": [0] * start + [1] * (len(ids) - start)})
    return rows, length_report(len(rows), lengths, max_length, setting, "examples")


def dpo_rows(fmt: SequenceFormat, pairs: Sequence[dict], max_length: int, setting: str) -> tuple[list[dict], dict]:
    """``{prompt_ids, chosen_ids, rejected_ids}`` per pair and counts; a pair is kept when both of its
    sequences fit in ``max_length``."""
    rows, lengths = [], []
    prompt_cache: dict[str, list[int]] = {}
    for pair in pairs:
        prompt = pair["prompt"]
        if prompt not in prompt_cache:
            prompt_cache[prompt] = fmt.prompt_ids(prompt)
        prompt_ids = prompt_cache[prompt]
        chosen = fmt.completion_ids(pair["chosen"], pair.get("chosen_finished", True))
        rejected = fmt.completion_ids(pair["rejected"], pair.get("rejected_finished", True))
        longest = len(prompt_ids) + max(len(chosen), len(rejected))
        lengths.append(longest)
        if longest <= max_length:
            rows.append({"prompt_ids": prompt_ids, "chosen_ids": chosen, "rejected_ids": rejected})
    return rows, length_report(len(rows), lengths, max_length, setting, "pairs")


def length_report(kept: int, lengths: Sequence[int], max_length: int, setting: str, what: str) -> dict:
    """Counts for the stage summary; warns when some were too long, fails when none fit."""
    dropped = len(lengths) - kept
    report = {f"{what}_too_long": dropped, "longest_tokens": max(lengths, default=0)}
    if dropped and kept:
        log.warning("%s: %d of %d %s are longer than %d tokens and were left out (the longest has %d); raise %s "
                    "to keep them", setting.split(".")[0], dropped, len(lengths), what, max_length,
                    report["longest_tokens"], setting)
    if not kept:
        median = statistics.median(lengths) if lengths else 0
        raise VstarError(
            f"{setting}={max_length}: none of the {len(lengths)} {what} fit (median {median:g} tokens, longest "
            f"{report['longest_tokens']}). Raise {setting}, or shorten the prompts (e.g. task.options.few_shot)."
        )
    return report
