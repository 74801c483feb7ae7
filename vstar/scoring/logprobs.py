"""Sum of token log-probabilities of completions given prompts, under one model."""

from __future__ import annotations

from typing import Sequence

import torch
from vstar.progress import tqdm

from vstar.models import load_model, load_tokenizer


def _encode(tokenizer, prompt: str, completion: str, add_eos: bool) -> tuple[list[int], int]:
    """Token ids of prompt+completion(+EOS) and where the completion starts."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    start = 0
    while start < min(len(prompt_ids), len(full_ids)) and prompt_ids[start] == full_ids[start]:
        start += 1
    if add_eos:
        full_ids = full_ids + [tokenizer.eos_token_id]
    return full_ids, start


@torch.no_grad()
def completion_logprobs(
    model_path: str,
    prompts: Sequence[str],
    completions: Sequence[str],
    finished: Sequence[bool],
    batch_size: int = 256,
    dtype: str = "float32",
    desc: str = "scoring",
) -> tuple[list[float], list[int]]:
    """``log p(completion | prompt)`` summed over completion tokens (EOS included when
    the completion finished), and the number of those tokens, for each pair."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path, dtype=dtype, device=device)
    encoded = [_encode(tokenizer, p, c, f) for p, c, f in zip(prompts, completions, finished)]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # less padding
    sums = [0.0] * len(encoded)
    counts = [0] * len(encoded)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False, unit="batch"):
        index = order[start : start + batch_size]
        width = max(len(encoded[i][0]) for i in index)
        ids = torch.full((len(index), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(index), width), dtype=torch.long)
        for row, i in enumerate(index):  # right padding: positions line up with the tokens
            seq = encoded[i][0]
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        token_logp = logp.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1).cpu()
        for row, i in enumerate(index):
            seq, begin = encoded[i]
            span = token_logp[row, max(begin, 1) - 1 : len(seq) - 1]
            sums[i] = float(span.sum())
            counts[i] = int(span.numel())
    del model
    return sums, counts
