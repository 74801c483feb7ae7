"""The sampler interface: k completions per prompt, seeded, with the same records on every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Completion:
    text: str  # the completion, cut at the first stop string, without the end token (see end_completion)
    num_tokens: int  # generated tokens counted up to the end of the completion (EOS included)
    finished: bool  # True if it ended with EOS or a stop string, False if it hit max_new_tokens


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int = 0


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the earliest stop string; say whether one was found."""
    cut = len(text)
    for marker in stop:
        index = text.find(marker)
        if index != -1:
            cut = min(cut, index)
    return text[:cut], cut < len(text)


def end_completion(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """A completion as every stage stores it: cut at the earliest stop string, without trailing
    whitespace (the end token follows the last visible character). Gold solutions go through
    this too, so gold and sampled completions end the same way. Says whether a stop string was
    found."""
    text, stopped = cut_at_stop(text, stop)
    return text.rstrip(), stopped


class Sampler(ABC):
    """Generates ``params.n`` completions for each prompt."""

    @abstractmethod
    def generate(self, prompts: Sequence[str], params: SamplingParams, desc: str = "sampling") -> list[list[Completion]]:
        """``result[i][j]`` is the j-th completion of ``prompts[i]``. Deterministic for a seed."""

    def close(self) -> None:
        """Free the model (and the GPU) before the next stage."""
