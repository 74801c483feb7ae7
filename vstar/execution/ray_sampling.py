"""Sampling on Ray: ``num_workers`` actors, each holding one model replica.

A sampling stage may make several ``generate`` calls (the chunks it resumes by); all of
them run on one set of actors. Each call is cut into the batches the local sampler would
run for it — the same rows with the same seeds (transformers), or whole prompts with
per-prompt seeds (vLLM) — and the batches of all calls, in order, are dealt round-robin to
the actors, which work through their queues in order. So the calls finish roughly in
order, and each call's result equals what the local sampler gives for it wherever the
backend is deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from vstar.progress import tqdm

from vstar.config import Config
from vstar.errors import VstarError
from vstar.execution.ray_connection import MAX_RETRIES, connect
from vstar.sampling import make_sampler
from vstar.sampling.base import Completion, SamplingParams

if TYPE_CHECKING:  # torch and transformers load only where sampling runs
    from vstar.sampling.hf import Batch

#: whole-prompt batches per worker for vLLM (its engine batches internally; a few per worker balance the load)
VLLM_BATCHES_PER_WORKER = 4

Call = tuple[Sequence[str], SamplingParams]  # (prompts, params) of one generate call


class SamplerWorker:
    """The body of a sampling actor: one model replica, generating batches on request."""

    def __init__(self, backend: str, model_path: str, batch_size: int, dtype: str, tensor_parallel_size: int,
                 gpu_memory_utilization: float, chat_template: str = "auto"):
        from transformers.utils import logging as transformers_logging  # lazy: transformers

        transformers_logging.disable_progress_bar()  # the driver shows the progress
        self.sampler = make_sampler(backend, model_path, batch_size, dtype, tensor_parallel_size, gpu_memory_utilization,
                                    chat_template)

    def generate_batches(self, prompts: Sequence[str], params: SamplingParams, batches: list[Batch]) -> list[list[Completion]]:
        return self.sampler.generate_batches(prompts, params, batches, progress=False)

    def close(self) -> None:
        self.sampler.close()


def sampling_plan(config: Config, num_prompts: int, params: SamplingParams) -> list[Batch]:
    """The batches of one call: the local sampler's own batches (transformers), or whole-prompt chunks (vLLM)."""
    if config.sampling.backend == "vllm":
        from vstar.sampling.vllm_backend import prompt_batches  # lazy: torch

        chunks = config.execution.num_workers * VLLM_BATCHES_PER_WORKER
        return prompt_batches(num_prompts, params.n, -(-num_prompts // chunks))
    from vstar.sampling.hf import batch_plan  # lazy: torch

    return batch_plan(num_prompts, params.n, config.sampling.batch_size)


def generate_chunks_with_ray(
    config: Config,
    model_path: str,
    calls: Sequence[Call],
    desc: str = "sampling",
    on_call: Callable[[int, list[list[Completion]]], None] | None = None,
) -> list[list[list[Completion]]]:
    """``result[c][i][j]``: the j-th completion of prompt i of ``calls[c]``, on one set of actors.

    ``on_call(c, result[c])`` runs in call order, as soon as calls 0..c are all done
    (a stage appends each to its partial file there, so an interrupted stage resumes).
    """
    ray = connect(config)
    _check_replica_gpus(config)
    jobs = [(c, batch) for c, (prompts, params) in enumerate(calls) for batch in sampling_plan(config, len(prompts), params)]
    results = [[[None] * params.n for _ in prompts] for prompts, params in calls]
    remaining = [0] * len(calls)
    for c, _ in jobs:
        remaining[c] += 1
    delivered = 0

    def deliver() -> None:  # every finished call whose predecessors are finished too, in order
        nonlocal delivered
        while delivered < len(calls) and remaining[delivered] == 0:
            if on_call is not None:
                on_call(delivered, results[delivered])
            delivered += 1

    def store(job: int, completions: list[Completion]) -> None:
        c, batch = jobs[job]
        if len(completions) != len(batch.rows):
            raise VstarError(f"Ray sampling: a batch of {len(batch.rows)} rows came back with {len(completions)}.")
        for (i, j), completion in zip(batch.rows, completions):
            results[c][i][j] = completion
        remaining[c] -= 1
        deliver()

    deliver()  # calls with no rows at all
    if jobs:
        _run_on_actors(ray, config, model_path, calls, jobs, desc, store)
    return results  # type: ignore[return-value]


def _check_replica_gpus(config: Config) -> None:
    execution = config.execution
    if config.sampling.backend == "vllm" and 0 < execution.gpus_per_worker < execution.tensor_parallel_size:
        raise VstarError(
            f"execution.gpus_per_worker: {execution.gpus_per_worker} GPUs cannot hold a vLLM replica split over "
            f"execution.tensor_parallel_size={execution.tensor_parallel_size} GPUs; give each worker that many."
        )


def _run_on_actors(ray, config: Config, model_path: str, calls: Sequence[Call], jobs: list[tuple[int, Batch]],
                   desc: str, store: Callable[[int, list[Completion]], None]) -> None:
    """Start the actors, deal ``jobs`` round-robin, ``store`` each job's completions as it finishes."""
    execution = config.execution
    actor_class = ray.remote(SamplerWorker).options(
        num_cpus=1, num_gpus=execution.gpus_per_worker, max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES,
    )
    args = (config.sampling.backend, str(model_path), config.sampling.batch_size, config.model.dtype,
            execution.tensor_parallel_size, execution.gpu_memory_utilization, config.model.chat_template)
    actors = [actor_class.remote(*args) for _ in range(min(execution.num_workers, len(jobs)))]
    try:
        prompt_refs = [ray.put(list(prompts)) for prompts, _ in calls]
        futures = {
            actors[k % len(actors)].generate_batches.remote(prompt_refs[c], calls[c][1], [batch]): k
            for k, (c, batch) in enumerate(jobs)
        }
        with tqdm(total=sum(len(batch.rows) for _, batch in jobs), desc=desc, unit="seq", leave=False) as bar:
            pending = list(futures)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    (completions,) = ray.get(ref)
                    store(futures[ref], completions)
                    bar.update(len(completions))
        ray.get([actor.close.remote() for actor in actors])
    except ray.exceptions.RayActorError as exc:
        raise VstarError(f"Ray sampling: a sampling actor for {config.sampling.backend} failed: {exc}") from None
    finally:
        for actor in actors:
            ray.kill(actor)
