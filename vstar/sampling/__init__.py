"""Sampling backends behind one interface (``base.py``): ``make_sampler(backend, model_path, ...)``
(``registry.py``) builds the transformers (``hf.py``) or vLLM (``vllm_backend.py``) sampler."""

from vstar.sampling.base import Completion, Sampler
from vstar.sampling.registry import make_sampler

__all__ = ["Completion", "Sampler", "make_sampler"]
