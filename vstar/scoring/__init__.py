"""Score candidates: log-likelihood of a completion under a model, batched."""

from vstar.scoring.logprobs import completion_logprobs

__all__ = ["completion_logprobs"]
