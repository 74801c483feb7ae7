"""Score candidates: log-likelihood of a completion under a model, batched; the named score
variants built from those log-likelihoods (``variants``).

``completion_logprobs`` is loaded on first use, so ``vstar.scoring.variants`` and
``scoring_settings`` come without torch.
"""

from __future__ import annotations


def scoring_settings(config) -> dict:
    """The keyword settings of ``completion_logprobs`` that a run's config fixes."""
    return {"batch_tokens": config.eval.score_batch_tokens, "dtype": config.model.dtype,
            "chat_template": config.model.chat_template}


def __getattr__(name: str):
    if name == "completion_logprobs":
        from vstar.scoring.logprobs import completion_logprobs  # lazy: torch

        return completion_logprobs
    raise AttributeError(f"module 'vstar.scoring' has no attribute {name!r}")


__all__ = ["completion_logprobs", "scoring_settings"]
