"""Sum of token log-probabilities of completions given prompts, under one model.

``LogprobScorer`` holds a loaded model and scores batch after batch; ``completion_logprobs``
loads one for a single call. Sequences are built by ``SequenceFormat.encode`` (the same ids the model was trained and
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


class LogprobScorer:
    """One model, loaded once, that scores any number of (prompt, completion) batches.

    ``completion_logprobs`` loads one for a single call; a server or an API object keeps one.
    Not thread-safe: one thread at a time may call ``logprobs``.
    """

    def __init__(self, model_path: str, *, dtype: str = "float32", chat_template: str = "auto",
                 device: str | None = None):
        self.model_path = str(model_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.format = load_format(self.model_path, chat_template)
        self.model = load_model(self.model_path, dtype=dtype, device=self.device)
        self.keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    @torch.no_grad()
    def logprobs(self, prompts: Sequence[str], completions: Sequence[str], finished: Sequence[bool], *,
                 batch_tokens: int = BATCH_TOKENS, desc: str = "scoring", progress: bool = True,
                 ) -> tuple[list[float], list[int]]:
        """``log p(completion | prompt)`` summed over completion tokens (the end token included when
        the completion finished), and the number of those tokens, for each pair."""
        encoded = encode_all(self.format, prompts, completions, finished)
        if encoded:
            check_positions(self.model, max(len(ids) for ids, _ in encoded), f"{desc}: the longest prompt + completion")
        sums = [0.0] * len(encoded)
        counts = [0] * len(encoded)
        batches = token_batches([len(ids) for ids, _ in encoded], batch_tokens)
        for batch in tqdm(batches, desc=desc, leave=False, unit="batch", disable=not progress):
            rows = [encoded[i][0] for i in batch]
            # tokens scored per row: the completion's, except a first token with nothing before it
            spans = [min(len(ids) - start, len(ids) - 1) for ids, start in (encoded[i] for i in batch)]
            if max(spans) == 0:
                continue
            row_logps = _span_logprobs(self.model, rows, spans, self.format.tokenizer.pad_token_id, self.device,
                                       self.keeps_logits)
            for i, values in zip(batch, row_logps):
                sums[i] = float(values.sum())
                counts[i] = int(values.numel())
        return sums, counts

    def close(self) -> None:
        """Drop the model (and free GPU memory)."""
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


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
    """``LogprobScorer.logprobs`` with a model loaded for this call only."""
    scorer = LogprobScorer(model_path, dtype=dtype, chat_template=chat_template)
    try:
        return scorer.logprobs(prompts, completions, finished, batch_tokens=batch_tokens, desc=desc)
    finally:
        scorer.close()


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
