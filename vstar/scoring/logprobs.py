"""Sum of token log-probabilities of completions given prompts, under one model.

Sequences are built by ``SequenceFormat.encode`` (the same ids the model was trained and
sampled on), sorted by length and cut into batches of at most ``batch_tokens`` padded
tokens. Rows are left-padded with position ids counted from each row's first real token,
so a completion scores the same alone or in a batch. Logits are computed only for the
completion positions (``logits_to_keep``) and turned into log-probabilities a few rows at a
time in float32: the full-vocabulary log-softmax of a whole batch is never held at once.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from vstar.progress import tqdm

from vstar.models import load_model
from vstar.models.sequence import SequenceFormat, load_format
from vstar.models.batching import check_positions, pad_left

#: default for ``eval.score_batch_tokens``
BATCH_TOKENS = 8192
#: log-softmax is taken over at most this many (position x vocabulary) floats at once
SOFTMAX_FLOATS = 1 << 25


def encode_all(fmt: SequenceFormat, prompts: Sequence[str], completions: Sequence[str],
               finished: Sequence[bool]) -> list[tuple[list[int], int]]:
    """``fmt.encode`` of every pair (each distinct prompt encoded once)."""
    prompt_ids: dict[str, list[int]] = {}
    encoded = []
    for prompt, completion, done in zip(prompts, completions, finished):
        if prompt not in prompt_ids:
            prompt_ids[prompt] = fmt.prompt_ids(prompt)
        head = prompt_ids[prompt]
        encoded.append((head + fmt.completion_ids(completion, done), len(head)))
    return encoded


def token_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Indices sorted by length, grouped so that rows x longest row stays within ``batch_tokens``
    (a row longer than that is a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[i] <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


@torch.no_grad()
def completion_logprobs(
    model_path: str,
    prompts: Sequence[str],
    completions: Sequence[str],
    finished: Sequence[bool],
    *,
    batch_tokens: int = BATCH_TOKENS,
    dtype: str = "float32",
    chat_template: str = "auto",
    desc: str = "scoring",
) -> tuple[list[float], list[int]]:
    """``log p(completion | prompt)`` summed over completion tokens (the end token included when
    the completion finished), and the number of those tokens, for each pair."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fmt = load_format(model_path, chat_template)
    model = load_model(model_path, dtype=dtype, device=device)
    encoded = encode_all(fmt, prompts, completions, finished)
    if encoded:
        check_positions(model, max(len(ids) for ids, _ in encoded), f"{desc}: the longest prompt + completion")
    sums = [0.0] * len(encoded)
    counts = [0] * len(encoded)
    keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    for batch in tqdm(token_batches([len(ids) for ids, _ in encoded], batch_tokens), desc=desc, leave=False, unit="batch"):
        rows = [encoded[i][0] for i in batch]
        # tokens scored per row: the completion's, except a first token with nothing before it
        spans = [min(len(ids) - start, len(ids) - 1) for ids, start in (encoded[i] for i in batch)]
        if max(spans) == 0:
            continue
        row_logps = _span_logprobs(model, rows, spans, fmt.tokenizer.pad_token_id, device, keeps_logits)
        for i, values in zip(batch, row_logps):
            sums[i] = float(values.sum())
            counts[i] = int(values.numel())
    del model
    return sums, counts


def _span_logprobs(model, rows: list[list[int]], spans: list[int], pad_id: int, device: str,
                   keeps_logits: bool) -> list[torch.Tensor]:
    """Log-probs of the last ``spans[r]`` tokens of each row (float32, on the CPU)."""
    ids, mask = pad_left(rows, pad_id)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    widest = max(spans)
    kwargs = {"logits_to_keep": widest + 1} if keeps_logits else {}
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                   **kwargs).logits
    logits = logits[:, -(widest + 1) : -1]  # the logits that predict the last `widest` tokens
    targets = ids[:, -widest:].to(device)
    step = max(1, SOFTMAX_FLOATS // max(1, widest * logits.shape[-1]))
    picked = []
    for start in range(0, len(rows), step):
        part = torch.log_softmax(logits[start : start + step].float(), dim=-1)
        picked.append(part.gather(-1, targets[start : start + step].unsqueeze(-1)).squeeze(-1).cpu())
    token_logps = torch.cat(picked)
    return [token_logps[r, widest - span :] for r, span in enumerate(spans)]
