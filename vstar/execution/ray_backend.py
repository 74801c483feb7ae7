"""Sampling, labeling and scoring fanned out over Ray (``execution.backend: ray``).

- Sampling (``vstar.execution.ray_sampling``): ``execution.num_workers`` actors, each
  holding one model replica (the ``sampling.backend`` sampler) with
  ``execution.gpus_per_worker`` GPUs. The work is cut into the batches the local sampler
  would run (same rows, same seeds), dealt out round-robin, and put back in prompt order:
  the samples equal the local ones for the same seed wherever the backend is deterministic.
- Labeling: Ray tasks over chunks of (problem, completion) pairs, at most ``num_workers``
  in flight; each worker process builds the task from its name and options (once) and
  calls ``check_many``. A task whose worker dies is retried; a chunk that comes back with
  the wrong number of verdicts is an error, so no sample is dropped.
- Scoring: one Ray task per worker over a contiguous slice of the pairs, each calling
  ``completion_logprobs``.

Ray is imported lazily (optional extra ``vstar[ray]``). ``connect`` reuses a running
connection, joins the cluster at ``execution.address``, or starts a local instance.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Sequence

from vstar.progress import tqdm

from vstar.config import Config
from vstar.errors import VstarError
from vstar.tasks.base import Problem, Verdict

log = logging.getLogger("vstar")

#: labeling chunks per worker: smaller chunks balance load and make a retry cheaper
CHUNKS_PER_WORKER = 4
#: times Ray re-runs a task (or restarts an actor) whose worker process died
MAX_RETRIES = 3


def connect(config: Config):
    """The ``ray`` module, connected: an existing connection, ``execution.address``, or a new local instance."""
    try:
        import ray
    except ImportError as exc:
        raise VstarError(f"execution.backend=ray needs Ray: pip install 'vstar[ray]' ({exc}).") from None
    if ray.is_initialized():
        return ray
    address = config.execution.address or None
    # workers' output stays in Ray's session logs (/tmp/ray/session_latest/logs); errors still reach ray.get
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local instance needs no token
        options["num_cpus"] = max(os.cpu_count() or 1, config.execution.num_workers)
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        raise VstarError(f"execution.address: cannot reach a Ray cluster at {address!r} ({exc}).") from None
    log.info("Ray: %s", ray.cluster_resources())
    return ray


def split_evenly(items: Sequence, parts: int) -> list[list]:
    """``items`` in ``parts`` contiguous slices whose sizes differ by at most one (empty ones dropped)."""
    size, extra = divmod(len(items), parts)
    slices, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        if end > start:
            slices.append(list(items[start:end]))
        start = end
    return slices


def _gather(ray, futures: list, desc: str, unit: str, weights: Sequence[int]) -> list:
    """``ray.get`` of every future, in order, with a progress bar counting ``weights`` of finished ones."""
    position = {ref: i for i, ref in enumerate(futures)}
    pending = list(futures)
    with tqdm(total=sum(weights), desc=desc, unit=unit, leave=False) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            bar.update(sum(weights[position[ref]] for ref in done))
    return ray.get(futures)


# ---------------------------------------------------------------- sampling


def generate_chunks_with_ray(config: Config, model_path: str, calls, desc: str = "sampling", on_call=None):
    """Several ``generate`` calls on one set of actors; see ``vstar.execution.ray_sampling``."""
    from vstar.execution import ray_sampling

    return ray_sampling.generate_chunks_with_ray(config, model_path, calls, desc, on_call)


# ---------------------------------------------------------------- labeling


class _TaskCache:
    """The task a labeling worker process built last, kept for its next chunks.

    Building a task (reading its data, starting its sandbox) can cost as much as checking a
    chunk; Ray reuses worker processes, so each builds the task once. Closed when the
    worker process exits, or when a chunk asks for another task.
    """

    key: str | None = None
    task: Any = None

    @classmethod
    def get(cls, task_name: str, task_options: dict):
        import atexit
        import json

        from vstar.tasks import get_task

        key = json.dumps([task_name, task_options], sort_keys=True, default=str)
        if cls.key != key:
            cls.close()
            cls.task, cls.key = get_task(task_name, task_options), key
            atexit.register(cls.close)
        return cls.task

    @classmethod
    def close(cls) -> None:
        task, cls.task, cls.key = cls.task, None, None
        if task is not None:
            task.close()


def check_chunk(task_name: str, task_options: dict, problems: list[Problem], completions: list[str]) -> list[Verdict]:
    """The body of a labeling task: the task (built once per worker process) checks the chunk."""
    return _TaskCache.get(task_name, task_options).check_many(problems, completions)


def check_with_ray(
    config: Config,
    problems: Sequence[Problem],
    completions: Sequence[str],
    check: Callable[[str, dict, list[Problem], list[str]], list[Verdict]] = check_chunk,
) -> list[Verdict]:
    """``task.check_many(problems, completions)`` as Ray tasks over chunks, at most ``num_workers`` at a time.

    ``check`` is the chunk function run remotely (``check_chunk``; tests pass a faulty one).
    """
    if len(problems) != len(completions):
        raise VstarError(f"Ray labeling: {len(problems)} problems but {len(completions)} completions.")
    if not problems:
        return []
    ray = connect(config)
    bounds = _chunk_bounds(len(problems), config.execution.num_workers * CHUNKS_PER_WORKER)
    remote = ray.remote(check).options(
        num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False
    )
    name, options = config.task.name, dict(config.task.options)

    def submit(index: int):
        start, end = bounds[index]
        return remote.remote(name, options, list(problems[start:end]), list(completions[start:end]))

    sizes = [end - start for start, end in bounds]
    chunks = _run_limited(ray, submit, config.execution.num_workers, sizes, "labeling (ray)")
    return [verdict for chunk, bound in zip(chunks, bounds) for verdict in _checked_chunk(chunk, bound)]


def _run_limited(ray, submit: Callable[[int], Any], limit: int, sizes: Sequence[int], desc: str) -> list:
    """Results of ``submit(0..len(sizes)-1)``, in order, with at most ``limit`` Ray tasks in flight."""
    futures: dict[int, Any] = {}
    results: dict[int, Any] = {}
    waiting = list(range(len(sizes)))
    with tqdm(total=sum(sizes), desc=desc, unit="sample", leave=False) as bar:
        while waiting or futures:
            while waiting and len(futures) < limit:
                index = waiting.pop(0)
                futures[index] = submit(index)
            done, _ = ray.wait(list(futures.values()), num_returns=1)
            for index in [i for i, ref in futures.items() if ref in done]:
                results[index] = ray.get(futures.pop(index))
                bar.update(sizes[index])
    return [results[i] for i in range(len(sizes))]


def _chunk_bounds(total: int, chunks: int) -> list[tuple[int, int]]:
    sizes = [len(part) for part in split_evenly(range(total), max(1, min(chunks, total)))]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [(start, start + size) for start, size in zip(starts, sizes)]


def _checked_chunk(verdicts: list, bounds: tuple[int, int]) -> list[Verdict]:
    expected = bounds[1] - bounds[0]
    if len(verdicts) != expected or not all(isinstance(v, Verdict) for v in verdicts):
        raise VstarError(
            f"Ray labeling: the chunk of samples {bounds[0]}..{bounds[1] - 1} came back with {len(verdicts)} "
            f"verdicts, expected {expected}; refusing to drop or invent labels."
        )
    return verdicts


# ---------------------------------------------------------------- scoring


def score_with_ray(
    config: Config,
    model_path: str,
    prompts: Sequence[str],
    completions: Sequence[str],
    finished: Sequence[bool],
    batch_size: int = 256,
    dtype: str = "float32",
    desc: str = "scoring",
) -> tuple[list[float], list[int]]:
    """``completion_logprobs`` over ``num_workers`` Ray tasks, one contiguous slice of the pairs each."""
    from vstar.scoring.logprobs import completion_logprobs

    if not len(prompts) == len(completions) == len(finished):
        raise VstarError(f"Ray scoring: {len(prompts)} prompts, {len(completions)} completions, {len(finished)} flags.")
    if not prompts:
        return [], []
    ray = connect(config)
    bounds = _chunk_bounds(len(prompts), config.execution.num_workers)
    remote = ray.remote(completion_logprobs).options(
        num_cpus=1, num_gpus=config.execution.gpus_per_worker, max_retries=MAX_RETRIES
    )
    futures = [
        remote.remote(str(model_path), list(prompts[a:b]), list(completions[a:b]), list(finished[a:b]), batch_size, dtype, desc)
        for a, b in bounds
    ]
    sums: list[float] = []
    counts: list[int] = []
    for (a, b), (part_sums, part_counts) in zip(bounds, _gather(ray, futures, desc, "seq", [b - a for a, b in bounds])):
        if len(part_sums) != b - a or len(part_counts) != b - a:
            raise VstarError(f"Ray scoring: the slice {a}..{b - 1} came back with {len(part_sums)} scores.")
        sums.extend(part_sums)
        counts.extend(part_counts)
    return sums, counts
