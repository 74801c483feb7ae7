"""Scores from the ORM (probability of correct) and the generative verifier (P(Yes)).

Both read sequences built by ``SequenceFormat``, as they were trained on them.
"""

from __future__ import annotations

from typing import Sequence

import torch
from vstar.progress import tqdm

from vstar.models import load_model, load_tokenizer
from vstar.models.sequence import sequence_format
from vstar.models.batching import pad_left


def _batches(n: int, size: int, desc: str):
    return tqdm(range(0, n, size), desc=desc, leave=False, unit="batch")


@torch.no_grad()
def orm_probabilities(model_path: str, prompts: Sequence[str], completions: Sequence[str],
                      finished: Sequence[bool] | None = None, batch_size: int = 64,
                      chat_template: str = "auto") -> list[float]:
    """P(correct) from the ORM's scalar head, for each prompt + completion (+ end token when finished)."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(model_path)
    fmt = sequence_format(tokenizer, chat_template, model_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_path).eval()
    finished = [True] * len(prompts) if finished is None else finished
    rows = [fmt.encode(p, c, f)[0] for p, c, f in zip(prompts, completions, finished)]
    probs: list[float] = []
    for start in _batches(len(rows), batch_size, "scoring with ORM"):
        part = rows[start : start + batch_size]
        width = max(len(r) for r in part)  # right padding, as in training: the head reads the last real token
        ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in part])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in part])
        probs += torch.sigmoid(model(input_ids=ids, attention_mask=mask).logits[:, 0]).tolist()
    return probs


@torch.no_grad()
def yes_probabilities(model_path: str, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 64,
                      chat_template: str = "auto") -> list[float]:
    """P(Yes) / (P(Yes) + P(No)) at the answer position of the verification prompt."""
    from vstar.training.genrm import NO, YES, verification_prompt

    fmt = sequence_format(load_tokenizer(model_path), chat_template, model_path)
    model = load_model(model_path)
    yes_id = fmt.completion_ids(YES, finished=False)[0]
    no_id = fmt.completion_ids(NO, finished=False)[0]
    rows = [fmt.prompt_ids(verification_prompt(p, c)) for p, c in zip(prompts, completions)]
    probs: list[float] = []
    for start in _batches(len(rows), batch_size, "scoring with GenRM"):
        ids, mask = pad_left(rows[start : start + batch_size], fmt.tokenizer.pad_token_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1, :]
        pair = torch.log_softmax(logits[:, [yes_id, no_id]].float(), dim=-1)
        probs += pair[:, 0].exp().tolist()
    return probs
