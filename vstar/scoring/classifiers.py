"""Scores from the ORM (probability of correct) and the generative verifier (P(Yes))."""

from __future__ import annotations

from typing import Sequence

import torch
from vstar.progress import tqdm

from vstar.models import load_model, load_tokenizer


def _batches(n: int, size: int, desc: str):
    return tqdm(range(0, n, size), desc=desc, leave=False, unit="batch")


@torch.no_grad()
def orm_probabilities(model_path: str, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 256,
                      max_length: int = 256) -> list[float]:
    """P(correct) from the ORM's scalar head, for each prompt + completion (+EOS)."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(model_path)
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "left"  # as in training: the head reads the last token, so keep the end
    model = AutoModelForSequenceClassification.from_pretrained(model_path).eval()
    probs: list[float] = []
    texts = [p + c + tokenizer.eos_token for p, c in zip(prompts, completions)]
    for start in _batches(len(texts), batch_size, "scoring with ORM"):
        enc = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False, truncation=True, max_length=max_length)
        probs += torch.sigmoid(model(**enc).logits[:, 0]).tolist()
    return probs


@torch.no_grad()
def yes_probabilities(model_path: str, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 256) -> list[float]:
    """P(Yes) / (P(Yes) + P(No)) at the answer position of the verification prompt."""
    from vstar.training.genrm import NO, YES, verification_prompt

    tokenizer = load_tokenizer(model_path)  # left padding: the last position is the answer position
    model = load_model(model_path)
    yes_id = tokenizer(YES, add_special_tokens=False)["input_ids"][0]
    no_id = tokenizer(NO, add_special_tokens=False)["input_ids"][0]
    texts = [verification_prompt(p, c) for p, c in zip(prompts, completions)]
    probs: list[float] = []
    for start in _batches(len(texts), batch_size, "scoring with GenRM"):
        enc = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        logits = model(**enc).logits[:, -1, :]
        pair = torch.log_softmax(logits[:, [yes_id, no_id]], dim=-1)
        probs += pair[:, 0].exp().tolist()
    return probs
