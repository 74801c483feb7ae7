"""Dynamic batching: score requests from many connections together, on one model thread.

Request handlers put jobs on a queue and wait on a future. One worker thread owns the
``Verifier``: it takes the first waiting job, then gathers more (those already queued, then,
while requests are on their way, any arriving within ``wait_ms``) until ``max_batch``
sequences are gathered, and scores them all in one call (padded batches of
``score_batch_tokens``). A handler counts its request as on its way from the moment it starts
reading it until it queues its job (``Batcher.request``), so a lone request never waits for
company. A batch that fails is retried job by job, so one bad request (a sequence too long for
the model) fails alone. Other work (best-of-n) runs on the same thread, one job at a time,
between batches.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Callable, Sequence

from vstar.scoring.variants import VARIANT_COLUMNS, variant_score

log = logging.getLogger("vstar.serve")


@dataclass
class ScoreJob:
    """Score ``variant`` of each (prompt, completion, finished); the result is the list of scores."""

    prompts: Sequence[str]
    completions: Sequence[str]
    finished: Sequence[bool]
    variant: str
    future: Future = field(default_factory=Future)

    def __len__(self) -> int:
        return len(self.completions)


@dataclass
class CallJob:
    """Run ``call(verifier)`` on the model thread; the result is what it returns."""

    call: Callable
    future: Future = field(default_factory=Future)


STOP = object()

#: in a request handler's context: ``[batcher]`` until its job is queued, then ``[]``
ARRIVING: ContextVar = ContextVar("vstar_serve_arriving", default=None)


class Batcher:
    """The model thread and its queue (``start``, ``submit``, ``stop``)."""

    def __init__(self, verifier, max_batch: int = 32, wait_ms: float = 5.0):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.verifier = verifier
        self.max_batch = max_batch
        self.wait_s = wait_ms / 1000
        self.queue: queue.Queue = queue.Queue()
        self.held = None  # a job taken while gathering that could not join the batch
        self.thread = threading.Thread(target=self._work, name="vstar-model", daemon=True)
        self.batches = 0  # batches scored (for /health and the tests)
        self.coming = 0  # requests being read whose jobs are not queued yet (see ``request``)
        self.lock = threading.Lock()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.queue.put(STOP)
        self.thread.join(timeout=30)

    @contextmanager
    def request(self):
        """Count a request as coming while its handler reads it, until it queues its job (``submit``
        in the same context) or ends without one."""
        with self.lock:
            self.coming += 1
        token = ARRIVING.set([self])
        try:
            yield
        finally:
            self._arrived(ARRIVING.get())
            ARRIVING.reset(token)

    def submit(self, job: ScoreJob | CallJob) -> Future:
        self.queue.put(job)
        self._arrived(ARRIVING.get())
        return job.future

    def _arrived(self, arriving: list | None) -> None:
        """The request of this context is no longer coming (once)."""
        if arriving:
            arriving.clear()
            with self.lock:
                self.coming -= 1

    def _next(self, timeout: float | None):
        if self.held is not None:
            job, self.held = self.held, None
            return job
        return self.queue.get(timeout=timeout) if timeout is None or timeout > 0 else self.queue.get_nowait()

    def _work(self) -> None:
        while True:
            job = self._next(None)
            if job is STOP:
                return
            if isinstance(job, CallJob):
                _run_call(job, self.verifier)
                continue
            self._score(self._gather(job))

    def _gather(self, first: ScoreJob) -> list[ScoreJob]:
        """``first`` and the score jobs that join it: up to ``max_batch`` sequences, waiting at most
        ``wait_ms`` for more while requests are coming."""
        jobs, size = [first], len(first)
        deadline = time.monotonic() + self.wait_s
        while size < self.max_batch:
            try:  # wait only while requests are on their way; take what is queued in any case
                job = self._next(deadline - time.monotonic() if self.coming > 0 else 0)
            except queue.Empty:
                break
            if not isinstance(job, ScoreJob) or size + len(job) > self.max_batch:
                self.held = job
                break
            jobs.append(job)
            size += len(job)
        return jobs

    def _score(self, jobs: list[ScoreJob]) -> None:
        jobs = [job for job in jobs if not job.future.cancelled()]  # their clients went away
        if not jobs:
            return
        self.batches += 1
        try:
            results = score_jobs(self.verifier, jobs)
        except Exception as exc:
            if len(jobs) > 1:  # find the job that failed: each alone
                for job in jobs:
                    self._score([job])
                return
            settle(jobs[0].future, error=exc)
            return
        for job, scores in zip(jobs, results):
            settle(job.future, scores)


def score_jobs(verifier, jobs: Sequence[ScoreJob]) -> list[list[float]]:
    """Each job's scores, from one scoring call over all their sequences (the columns any of
    their variants needs)."""
    names = sorted({name for job in jobs for name in VARIANT_COLUMNS[job.variant]})
    prompts = [p for job in jobs for p in job.prompts]
    completions = [c for job in jobs for c in job.completions]
    finished = [f for job in jobs for f in job.finished]
    columns = verifier.columns(prompts, completions, finished, names)
    results, start = [], 0
    for job in jobs:
        part = {name: values[start : start + len(job)] for name, values in columns.items()}
        results.append([float(v) for v in variant_score(job.variant, part, verifier.settings.beta)])
        start += len(job)
    return results


def _run_call(job: CallJob, verifier) -> None:
    if job.future.cancelled():
        return
    try:
        result = job.call(verifier)
    except Exception as exc:
        settle(job.future, error=exc)
        return
    settle(job.future, result)


def settle(future: Future, result=None, error: BaseException | None = None) -> None:
    """Give ``future`` its result or error, unless its waiter cancelled it meanwhile."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        log.debug("a request was cancelled before its result came")
