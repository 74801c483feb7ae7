"""Sampling with ``transformers``' ``generate``: batched, left-padded, seeded per batch."""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from vstar.models import load_model, load_tokenizer
from vstar.sampling.base import Completion, Sampler, SamplingParams, cut_at_stop


class TransformersSampler(Sampler):
    def __init__(self, model_path: str, batch_size: int = 256, dtype: str = "float32"):
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = load_tokenizer(model_path)
        self.model = load_model(model_path, dtype=dtype, device=self.device)
        self.batch_size = batch_size

    def generate(self, prompts: Sequence[str], params: SamplingParams, desc: str = "sampling") -> list[list[Completion]]:
        # one row per (prompt, sample); rows of a batch share a seed derived from the batch's position,
        # so a run gives the same samples however it is resumed
        rows = [(i, j) for i in range(len(prompts)) for j in range(params.n)]
        results: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        with tqdm(total=len(rows), desc=desc, unit="seq", leave=False) as bar:
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                texts = [prompts[i] for i, _ in batch]
                completions = self._generate_batch(texts, params, seed=params.seed * 1_000_003 + start)
                for (i, j), completion in zip(batch, completions):
                    results[i][j] = completion
                bar.update(len(batch))
        return results  # type: ignore[return-value]

    @torch.no_grad()
    def _generate_batch(self, texts: list[str], params: SamplingParams, seed: int) -> list[Completion]:
        tok = self.tokenizer
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        torch.manual_seed(seed)
        greedy = params.temperature == 0
        out = self.model.generate(
            **enc,
            do_sample=not greedy,
            temperature=None if greedy else params.temperature,
            top_p=None if greedy else params.top_p,
            top_k=None,
            max_new_tokens=params.max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        new_tokens = out[:, enc["input_ids"].shape[1] :].tolist()
        completions = []
        for ids in new_tokens:
            ended = tok.eos_token_id in ids
            if ended:
                ids = ids[: ids.index(tok.eos_token_id) + 1]
            text = tok.decode([t for t in ids if t != tok.eos_token_id], skip_special_tokens=False)
            text = text.replace(tok.pad_token or "", "") if tok.pad_token != tok.eos_token else text
            text, stopped = cut_at_stop(text, params.stop)
            num_tokens = len(ids) if not stopped else len(tok(text, add_special_tokens=False)["input_ids"])
            completions.append(Completion(text=text, num_tokens=num_tokens, finished=ended or stopped))
        return completions
