"""Sampling with ``transformers``' ``generate``: batched, left-padded, seeded per batch.

The rows to generate, one per (prompt, sample), are cut into batches of ``batch_size``
rows; a batch's seed comes from its start row, so a batch gives the same completions
wherever it runs. ``batch_plan`` lists the batches; ``generate_batches`` generates any
subset of them, which is how the Ray backend splits one ``generate`` call over workers
and gets exactly what ``generate`` would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from vstar.progress import tqdm

from vstar.models import load_model, load_tokenizer
from vstar.sampling.base import Completion, Sampler, SamplingParams, cut_at_stop


@dataclass(frozen=True)
class Batch:
    """One batch of a ``generate`` call: ``rows`` are (prompt index, sample index) pairs."""

    start: int  # position of the first row among all rows; it fixes the batch's seed
    rows: tuple[tuple[int, int], ...]


def batch_plan(num_prompts: int, n: int, batch_size: int) -> list[Batch]:
    """The batches ``generate`` runs for ``num_prompts`` prompts and ``n`` samples each, in order."""
    rows = [(i, j) for i in range(num_prompts) for j in range(n)]
    return [Batch(start, tuple(rows[start : start + batch_size])) for start in range(0, len(rows), batch_size)]


def batch_seed(params: SamplingParams, batch: Batch) -> int:
    return params.seed * 1_000_003 + batch.start


def completion_from_ids(tokenizer, ids: list[int], stop: Sequence[str]) -> Completion:
    """A ``Completion`` from generated token ids: cut after EOS, decoded, cut at the first stop string."""
    eos = tokenizer.eos_token_id
    ended = eos in ids
    if ended:
        ids = ids[: ids.index(eos) + 1]
    text = tokenizer.decode([t for t in ids if t != eos], skip_special_tokens=False)
    if tokenizer.pad_token and tokenizer.pad_token != tokenizer.eos_token:
        text = text.replace(tokenizer.pad_token, "")
    text, stopped = cut_at_stop(text, stop)
    num_tokens = len(ids) if not stopped else len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return Completion(text=text, num_tokens=num_tokens, finished=ended or stopped)


class TransformersSampler(Sampler):
    def __init__(self, model_path: str, batch_size: int = 256, dtype: str = "float32"):
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = load_tokenizer(model_path)
        self.model = load_model(model_path, dtype=dtype, device=self.device)
        self.batch_size = batch_size

    def generate(self, prompts: Sequence[str], params: SamplingParams, desc: str = "sampling") -> list[list[Completion]]:
        # rows of a batch share a seed derived from the batch's position,
        # so a run gives the same samples however it is resumed or split
        plan = batch_plan(len(prompts), params.n, self.batch_size)
        results: list[list[Completion | None]] = [[None] * params.n for _ in prompts]
        for batch, completions in zip(plan, self.generate_batches(prompts, params, plan, desc)):
            for (i, j), completion in zip(batch.rows, completions):
                results[i][j] = completion
        return results  # type: ignore[return-value]

    def generate_batches(
        self, prompts: Sequence[str], params: SamplingParams, batches: Sequence[Batch], desc: str = "sampling",
        progress: bool = True,
    ) -> list[list[Completion]]:
        """The completions of each of ``batches`` (from ``batch_plan``), one list per batch, rows in order."""
        out = []
        with tqdm(total=sum(len(b.rows) for b in batches), desc=desc, unit="seq", leave=False, disable=not progress) as bar:
            for batch in batches:
                texts = [prompts[i] for i, _ in batch.rows]
                out.append(self._generate_batch(texts, params, seed=batch_seed(params, batch)))
                bar.update(len(batch.rows))
        return out

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
        return [completion_from_ids(tok, ids, params.stop) for ids in new_tokens]

    def close(self) -> None:
        """Drop the model (and free GPU memory) before the next stage."""
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
