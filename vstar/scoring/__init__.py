"""Score candidates: log-likelihood of a completion under a model, batched."""

from __future__ import annotations

from vstar.scoring.logprobs import completion_logprobs


def scoring_settings(config) -> dict:
    """The keyword settings of ``completion_logprobs`` that a run's config fixes."""
    return {"batch_tokens": config.eval.score_batch_tokens, "dtype": config.model.dtype,
            "chat_template": config.model.chat_template}


__all__ = ["completion_logprobs", "scoring_settings"]
