"""Backend names -> samplers: ``make_sampler`` builds the one ``sampling.backend`` names.

The backends load only when asked for: transformers brings torch, vLLM is an optional extra.
"""

from __future__ import annotations

from vstar.errors import VstarError
from vstar.sampling.base import Sampler


def make_sampler(
    backend: str,
    model_path: str,
    batch_size: int = 256,
    dtype: str = "float32",
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.85,
    chat_template: str = "auto",
) -> Sampler:
    """A sampler for ``sampling.backend``; ``tensor_parallel_size`` and ``gpu_memory_utilization``
    (``execution.*``) apply to vLLM only; ``chat_template`` is ``model.chat_template``."""
    if backend == "transformers":
        from vstar.sampling.hf import TransformersSampler  # lazy: torch

        return TransformersSampler(model_path, batch_size=batch_size, dtype=dtype, chat_template=chat_template)
    if backend == "vllm":
        try:
            from vstar.sampling.vllm_backend import VLLMSampler  # lazy: torch, vllm (an optional extra)
        except ImportError as exc:
            raise VstarError(
                f"sampling.backend=vllm needs the optional extra: pip install 'vstar[vllm]' ({exc})."
            ) from None
        return VLLMSampler(
            model_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            chat_template=chat_template,
        )
    raise VstarError(f"sampling.backend: unknown backend {backend!r}; expected transformers or vllm.")
