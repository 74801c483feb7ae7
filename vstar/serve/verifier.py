"""A trained verifier at work: score candidates by name (``score_variants``' names) and pick the
best of n completions sampled from G_T.

``Verifier.from_run(run_dir)`` takes the run's V, G_SFT and G_T and its settings (chat
template, dtype, beta, sampling); ``Verifier.from_checkpoint(path)`` takes a verifier folder
alone (plus, optionally, G_SFT and a generator). Models load on first use and stay loaded:
the verifier for any score, G_SFT only for a variant that needs it (the DPO reward, the G_SFT
control), G_T for best-of-n. Scores are computed by ``scoring.logprobs.LogprobScorer``, the
code the run's evaluation uses, so they equal the run's own ``eval/scores.jsonl``.

Importing this module loads neither torch nor a model. One thread at a time may use a
``Verifier`` (the server gives it one worker thread).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from vstar.config import Config, load_config
from vstar.errors import VstarError
from vstar.rundir import RunDir
from vstar.sampling import make_sampler
from vstar.sampling.base import SamplingParams
from vstar.scoring.variants import PAPER_SCORE, VARIANT_COLUMNS, variant_score
from vstar.tasks import get_task
from vstar.tasks.registry import get_task_class

log = logging.getLogger("vstar")

#: the log-likelihood column each model gives
MODEL_COLUMNS = {"verifier": "verifier_logp_sum", "sft": "sft_logp_sum", "generator": "generator_logp_sum"}


@dataclass(frozen=True)
class Settings:
    """What a run's config fixes for scoring and sampling (``Settings.of(config)``)."""

    beta: float
    chat_template: str
    dtype: str
    batch_tokens: int
    backend: str
    sampling_batch_size: int
    temperature: float
    top_p: float
    max_new_tokens: int
    tensor_parallel_size: int
    gpu_memory_utilization: float

    @classmethod
    def of(cls, config: Config) -> "Settings":
        return cls(
            beta=config.verifier.beta, chat_template=config.model.chat_template, dtype=config.model.dtype,
            batch_tokens=config.eval.score_batch_tokens, backend=config.sampling.backend,
            sampling_batch_size=config.sampling.batch_size, temperature=config.eval.temperature,
            top_p=config.sampling.top_p, max_new_tokens=config.sampling.max_new_tokens,
            tensor_parallel_size=config.execution.tensor_parallel_size,
            gpu_memory_utilization=config.execution.gpu_memory_utilization,
        )


@dataclass(frozen=True)
class Candidate:
    completion: str
    finished: bool
    num_tokens: int
    score: float


@dataclass(frozen=True)
class Pick:
    """Best-of-n for one prompt: the picked candidate (the first of the highest scores) and all n."""

    prompt: str
    variant: str
    best: int
    candidates: tuple[Candidate, ...]

    @property
    def completion(self) -> str:
        return self.candidates[self.best].completion

    @property
    def score(self) -> float:
        return self.candidates[self.best].score

    def to_record(self) -> dict:
        return {"prompt": self.prompt, "completion": self.completion, "score": self.score, "best": self.best,
                "variant": self.variant, "candidates": [dataclasses.asdict(c) for c in self.candidates]}


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score; the first of equal ones."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


class Verifier:
    """V (and, when given, G_SFT and G_T) ready to score candidates and pick the best of n."""

    def __init__(self, verifier: str | Path, *, sft: str | Path | None = None, generator: str | Path | None = None,
                 settings: Settings | None = None, stop: Sequence[str] = (), device: str | None = None):
        self.paths = {"verifier": str(verifier), "sft": sft and str(sft), "generator": generator and str(generator)}
        self.settings = settings or Settings.of(Config())
        self.stop = tuple(stop)
        self.device = device
        self._scorers: dict = {}
        self._sampler = None

    @classmethod
    def from_run(cls, run_dir: str | Path, *, stop: Sequence[str] | None = None, device: str | None = None
                 ) -> "Verifier":
        """The run's V, G_SFT and G_T (iteration run.iterations), with its settings.
        ``stop``: the stop strings best-of-n cuts completions at (default: the run's task's)."""
        config, run = load_run(run_dir)
        if stop is None:
            stop = task_stop(config)
        generator = run.generator(config.run.iterations)
        return cls(run.verifier, sft=run.sft, generator=generator, settings=Settings.of(config), stop=stop,
                   device=device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, sft: str | Path | None = None, generator: str | Path | None = None,
                        config: Config | None = None, stop: Sequence[str] = (), device: str | None = None) -> "Verifier":
        """A verifier folder (a full model or a PEFT adapter); ``config``: settings (default: vstar's defaults)."""
        for name, folder in (("verifier", path), ("sft", sft), ("generator", generator)):
            if folder is not None and not Path(folder).is_dir():
                raise VstarError(f"{name} checkpoint '{folder}': no such directory (expected a saved model).")
        return cls(path, sft=sft, generator=generator, settings=Settings.of(config or Config()), stop=stop,
                   device=device)

    @property
    def variants(self) -> list[str]:
        """The score variants these models give."""
        columns = {MODEL_COLUMNS[name] for name, path in self.paths.items() if path} | {"tokens"}
        return [name for name, needed in VARIANT_COLUMNS.items() if set(needed) <= columns]

    def check_variant(self, variant: str) -> str:
        if variant not in self.variants:
            raise VstarError(f"score variant {variant!r}: not one of {', '.join(self.variants)}"
                             + ("" if self.paths["sft"] else " (G_SFT not given: no DPO reward or G_SFT control)"))
        return variant

    def score(self, prompt: str, completions: Sequence[str], *, variant: str = PAPER_SCORE,
              finished: bool | Sequence[bool] = True) -> list[float]:
        """The ``variant`` score of each completion of ``prompt`` (default: the paper's log V(y|x));
        ``finished``: whether each completion ended (then its end token is scored too)."""
        check_text(prompt, "prompt")
        if isinstance(completions, str):
            raise VstarError("completions: expected a list of strings, got one string.")
        flags = finished_flags(finished, len(completions))
        return self.score_pairs([prompt] * len(completions), completions, flags, variant=variant)

    def score_pairs(self, prompts: Sequence[str], completions: Sequence[str], finished: Sequence[bool], *,
                    variant: str = PAPER_SCORE, progress: bool = False) -> list[float]:
        """The ``variant`` score of each (prompt, completion, finished), scored in padded batches."""
        self.check_variant(variant)
        if not len(prompts) == len(completions) == len(finished):
            raise VstarError(f"score: {len(prompts)} prompts, {len(completions)} completions and {len(finished)} "
                             "finished flags; expected one of each per candidate.")
        for name, values, check in (("prompts", prompts, check_text), ("completions", completions, check_text),
                                    ("finished", finished, check_flag)):
            for index, value in enumerate(values):
                check(value, f"{name}[{index}]")
        columns = self.columns(prompts, completions, finished, VARIANT_COLUMNS[variant], progress=progress)
        return [float(v) for v in variant_score(variant, columns, self.settings.beta)]

    def columns(self, prompts: Sequence[str], completions: Sequence[str], finished: Sequence[bool],
                names: Sequence[str], progress: bool = False) -> dict[str, list]:
        """The log-likelihood columns ``names`` (``MODEL_COLUMNS`` values, ``tokens``) of each pair."""
        wanted = [model for model, column in MODEL_COLUMNS.items() if column in names]
        if "tokens" in names and not wanted:
            wanted = ["verifier"]
        out: dict[str, list] = {}
        for model in wanted:
            sums, counts = self.scorer(model).logprobs(
                prompts, completions, finished, batch_tokens=self.settings.batch_tokens,
                desc=f"scoring with {model}", progress=progress,
            )
            out[MODEL_COLUMNS[model]] = sums
            out["tokens"] = counts
        return out

    def best_of_n(self, prompts: Sequence[str], n: int, *, variant: str = PAPER_SCORE, seed: int = 0,
                  temperature: float | None = None, max_new_tokens: int | None = None,
                  stop: Sequence[str] | None = None, progress: bool = False) -> list[Pick]:
        """Sample ``n`` completions per prompt from G_T, score each, pick the best per prompt.
        Sampling follows the run's settings (test temperature, top_p, max_new_tokens) unless given."""
        self.check_variant(variant)
        if not self.paths["generator"]:
            raise VstarError("best-of-n needs a generator: load the verifier from a run, or pass generator=PATH.")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise VstarError(f"best-of-n: n must be a positive integer, got {n!r}.")
        if isinstance(prompts, str):
            raise VstarError("best-of-n: prompts: expected a list of strings, got one string.")
        for index, prompt in enumerate(prompts):
            check_text(prompt, f"prompts[{index}]")
        params = SamplingParams(
            n=n, seed=seed, top_p=self.settings.top_p,
            temperature=self.settings.temperature if temperature is None else temperature,
            max_new_tokens=self.settings.max_new_tokens if max_new_tokens is None else max_new_tokens,
            stop=self.stop if stop is None else tuple(stop),
        )
        sampled = self.sampler().generate(list(prompts), params, desc="best-of-n: sampling") if prompts else []
        flat = [(prompt, c) for prompt, row in zip(prompts, sampled) for c in row]
        scores = self.score_pairs([p for p, _ in flat], [c.text for _, c in flat], [c.finished for _, c in flat],
                                  variant=variant, progress=progress)
        picks = []
        for i, (prompt, row) in enumerate(zip(prompts, sampled)):
            row_scores = scores[i * n : (i + 1) * n]
            candidates = tuple(Candidate(c.text, c.finished, c.num_tokens, s) for c, s in zip(row, row_scores))
            picks.append(Pick(prompt, variant, best_index(row_scores), candidates))
        return picks

    def scorer(self, model: str):
        """The loaded ``LogprobScorer`` of ``model`` (verifier, sft, generator), loaded on first use."""
        if model not in self._scorers:
            from vstar.scoring.logprobs import LogprobScorer  # lazy: torch

            self._scorers[model] = LogprobScorer(self.paths[model], dtype=self.settings.dtype,
                                                 chat_template=self.settings.chat_template, device=self.device)
        return self._scorers[model]

    def sampler(self):
        """G_T's sampler (``sampling.backend``), loaded on first use."""
        if self._sampler is None:
            s = self.settings
            self._sampler = make_sampler(s.backend, self.paths["generator"], s.sampling_batch_size, s.dtype,
                                         s.tensor_parallel_size, s.gpu_memory_utilization, s.chat_template)
        return self._sampler

    def close(self) -> None:
        """Free every loaded model."""
        for scorer in self._scorers.values():
            scorer.close()
        self._scorers.clear()
        if self._sampler is not None:
            self._sampler.close()
            self._sampler = None


def load_run(run_dir: str | Path) -> tuple[Config, RunDir]:
    """A finished run's config and directory; an unfinished or foreign folder fails clearly."""
    run = RunDir(run_dir)
    if not run.config.exists():
        raise VstarError(f"'{run_dir}' is not a vstar run directory (no config.yaml).")
    config = load_config(run.config)
    for name, folder in (("verifier", run.verifier), ("G_SFT", run.sft),
                         ("G_T", run.generator(config.run.iterations))):
        if not (folder / "config.json").exists() and not (folder / "adapter_config.json").exists():
            raise VstarError(f"run '{run_dir}': no trained {name} at '{folder}' (the run has not finished it; "
                             f"continue it with `vstar run --resume {run_dir}`).")
    return config, run


def task_stop(config: Config) -> tuple[str, ...]:
    """The stop strings of the run's task (its class's, with a warning, when the task cannot be built here:
    e.g. its data files are elsewhere)."""
    try:
        task = get_task(config.task.name, config.task.options)
    except VstarError as exc:
        log.warning("task '%s' cannot be built here (%s); best-of-n uses its default stop strings",
                    config.task.name, exc)
        return tuple(get_task_class(config.task.name).stop)
    try:
        return tuple(task.stop)
    finally:
        task.close()


def load_verifier(path: str | Path, *, stop: Sequence[str] | None = None, device: str | None = None) -> Verifier:
    """A run directory (with config.yaml) -> ``Verifier.from_run`` (stop strings: the run's task's unless
    given); else a checkpoint folder (no stop strings unless given)."""
    if (Path(path) / "config.yaml").exists():
        return Verifier.from_run(path, stop=stop, device=device)
    return Verifier.from_checkpoint(path, stop=stop or (), device=device)


def check_text(value, what: str) -> None:
    if not isinstance(value, str):
        raise VstarError(f"{what}: expected a string, got {type(value).__name__}.")


def check_flag(value, what: str) -> None:
    if not isinstance(value, bool):
        raise VstarError(f"{what}: expected true or false, got {value!r}.")


def finished_flags(finished: bool | Sequence[bool], count: int) -> list[bool]:
    """One flag per completion: a single bool for all, or a list of ``count`` bools."""
    if isinstance(finished, bool):
        return [finished] * count
    flags = list(finished)
    if len(flags) != count or not all(isinstance(f, bool) for f in flags):
        raise VstarError(f"finished: expected true/false or a list of {count} of them, got {finished!r}.")
    return flags
