"""Sampling backends behind one interface: ``make_sampler(config, model_path)``."""

from vstar.sampling.base import Completion, Sampler, make_sampler

__all__ = ["Completion", "Sampler", "make_sampler"]
