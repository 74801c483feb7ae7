"""Score candidates: log-likelihood of a completion under a model, batched."""

from __future__ import annotations

import functools
from typing import Callable

from vstar.scoring.logprobs import completion_logprobs


def scoring_settings(config) -> dict:
    """The keyword settings of ``completion_logprobs`` that a run's config fixes."""
    return {"batch_tokens": config.eval.score_batch_tokens, "dtype": config.model.dtype,
            "chat_template": config.model.chat_template}


def scorer(config) -> Callable:
    """``completion_logprobs(model_path, prompts, completions, finished, desc=...)`` with the run's
    settings, here or fanned out over Ray workers when ``execution.backend`` is ray."""
    if config.execution.backend == "ray":
        from vstar.execution.ray_backend import score_with_ray

        return functools.partial(score_with_ray, config)
    return functools.partial(completion_logprobs, **scoring_settings(config))


__all__ = ["completion_logprobs", "scorer", "scoring_settings"]
