"""Score candidates: log-likelihood of a completion under a model, batched."""

from __future__ import annotations

import functools
from typing import Callable

from vstar.scoring.logprobs import completion_logprobs


def scorer(config) -> Callable:
    """``completion_logprobs`` here, or fanned out over Ray workers when ``execution.backend`` is ray."""
    if config.execution.backend == "ray":
        from vstar.execution.ray_backend import score_with_ray

        return functools.partial(score_with_ray, config)
    return completion_logprobs


__all__ = ["completion_logprobs", "scorer"]
