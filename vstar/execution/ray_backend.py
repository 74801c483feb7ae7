"""Labeling and scoring fanned out over Ray (``execution.backend: ray``); sampling is in
``ray_sampling.py``, the connection in ``ray_connection.py``.

- Labeling: Ray tasks over chunks of (problem, completion) pairs, at most ``num_workers``
  in flight; each worker process builds the task from its name and options (once) and
  calls ``check_many``. A task whose worker dies is retried; a chunk that comes back with
  the wrong number of verdicts is an error, so no sample is dropped.
- Scoring: one Ray task per worker over a contiguous slice of the pairs, each calling
  ``completion_logprobs``.

Ray is imported lazily (optional extra ``vstar[ray]``), by ``connect``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from vstar.progress import tqdm

from vstar.config import Config
from vstar.errors import VstarError
from vstar.execution.ray_connection import MAX_RETRIES, connect
from vstar.tasks import get_task
from vstar.tasks.base import Problem, Verdict

#: labeling chunks per worker: smaller chunks balance load and make a retry cheaper
CHUNKS_PER_WORKER = 4


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
    desc: str = "scoring",
) -> tuple[list[float], list[int]]:
    """``completion_logprobs`` over ``num_workers`` Ray tasks, one contiguous slice of the pairs each."""
    from vstar.scoring import completion_logprobs, scoring_settings  # lazy: torch

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
        remote.remote(str(model_path), list(prompts[a:b]), list(completions[a:b]), list(finished[a:b]), desc=desc,
                      **scoring_settings(config))
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
