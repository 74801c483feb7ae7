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
from transformers import GenerationConfig

from vstar.models import load_model
from vstar.models.batching import check_positions, pad_left
from vstar.models.sequence import SequenceFormat, load_format
from vstar.progress import tqdm
from vstar.sampling.base import Completion, Sampler, SamplingParams, end_completion


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


def completion_from_ids(fmt: SequenceFormat, ids: Sequence[int], stop: Sequence[str]) -> Completion:
    """A ``Completion`` from generated token ids: cut at the first stop token, decoded as a
    continuation of the prompt (``SequenceFormat.decode_completion``), then ended by
    ``end_completion`` (first stop string, trailing whitespace)."""
    ids = list(ids)
    ended = next((index for index, token in enumerate(ids) if token in fmt.stop_ids), None)
    if ended is not None:
        ids = ids[: ended + 1]
    text = fmt.decode_completion(ids[:-1] if ended is not None else ids)
    pad = fmt.tokenizer.pad_token
    if pad and fmt.tokenizer.pad_token_id not in fmt.stop_ids:
        text = text.replace(pad, "")
    text, stopped = end_completion(text, stop)
    num_tokens = len(fmt.completion_ids(text, finished=True)) if stopped else len(ids)
    return Completion(text=text, num_tokens=num_tokens, finished=ended is not None or stopped)


def sampling_generation_config(params: SamplingParams, fmt: SequenceFormat) -> GenerationConfig:
    """A ``GenerationConfig`` with vstar's settings and nothing else. A checkpoint's own
    ``generation_config.json`` (a repetition penalty, top-k, suppressed tokens, ...) would change
    the distribution that the samples and their scores assume, so the sampler clears it; and
    transformers fills every setting left unset with its defaults (top-k 50), so top-k is
    switched off here explicitly (0)."""
    greedy = params.temperature == 0
    return GenerationConfig(
        do_sample=not greedy,
        temperature=None if greedy else params.temperature,
        top_p=None if greedy else params.top_p,
        top_k=None if greedy else 0,
        repetition_penalty=1.0,
        max_new_tokens=params.max_new_tokens,
        pad_token_id=fmt.tokenizer.pad_token_id,
        eos_token_id=list(fmt.stop_ids),
        stop_strings=list(params.stop) or None,
    )


class TransformersSampler(Sampler):
    def __init__(self, model_path: str, batch_size: int = 256, dtype: str = "float32", chat_template: str = "auto"):
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.format = load_format(model_path, chat_template)
        self.model = load_model(model_path, dtype=dtype, device=self.device)
        self.model.generation_config = GenerationConfig()  # no checkpoint defaults (stop ids are in self.format)
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
        encoded: dict[int, list[int]] = {}
        for batch in batches:
            for i, _ in batch.rows:
                if i not in encoded:
                    encoded[i] = self.format.prompt_ids(prompts[i])
        if encoded:
            check_positions(self.model, max(map(len, encoded.values())) + params.max_new_tokens,
                            f"{desc}: the longest prompt plus sampling.max_new_tokens")
        out = []
        with tqdm(total=sum(len(b.rows) for b in batches), desc=desc, unit="seq", leave=False, disable=not progress) as bar:
            for batch in batches:
                rows = [encoded[i] for i, _ in batch.rows]
                out.append(self._generate_batch(rows, params, seed=batch_seed(params, batch)))
                bar.update(len(batch.rows))
        return out

    @torch.no_grad()
    def _generate_batch(self, rows: list[list[int]], params: SamplingParams, seed: int) -> list[Completion]:
        ids, mask = pad_left(rows, self.format.tokenizer.pad_token_id)
        torch.manual_seed(seed)
        out = self.model.generate(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            generation_config=sampling_generation_config(params, self.format),
            tokenizer=self.format.tokenizer if params.stop else None,
        )
        new_tokens = out[:, ids.shape[1]:].tolist()
        return [completion_from_ids(self.format, generated, params.stop) for generated in new_tokens]

    def close(self) -> None:
        """Drop the model (and free GPU memory) before the next stage."""
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
