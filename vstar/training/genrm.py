"""Generative verifier (GenRM-style): the LM learns to answer "Yes"/"No" to
"Is the answer correct?" after problem + solution; the score is P(Yes).

Initialised from G_SFT and trained with SFT (loss on the answer token only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from vstar.config import TrainSection

QUESTION = "\nIs the answer correct? "
YES, NO = "Yes", "No"


def verification_prompt(prompt: str, completion: str) -> str:
    return prompt + completion + QUESTION


def train_genrm(sft_path: str, examples: Sequence[dict], out_dir: Path, train: TrainSection, seed: int,
                chat_template: str = "auto") -> dict:
    """SFT G_SFT on (problem + solution + question -> Yes/No) built from labeled samples."""
    from vstar.training.sft import train_sft

    pairs = [
        {"prompt": verification_prompt(e["prompt"], e["completion"]), "completion": YES if e["correct"] else NO}
        for e in examples
    ]
    summary = train_sft(sft_path, pairs, out_dir, train, seed, chat_template=chat_template,
                        setting="verifier.max_length")
    summary["positives"] = int(sum(e["correct"] for e in examples))
    return summary
