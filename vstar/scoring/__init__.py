"""Score candidates: log-likelihood of a completion under a model, batched."""

from __future__ import annotations

from vstar.scoring.logprobs import completion_logprobs

__all__ = ["completion_logprobs"]
