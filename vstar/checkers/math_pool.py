"""Math answer checking for batches, with math-verify run in worker processes under a hard timeout.

math-verify's own timeouts rely on ``signal.alarm`` (main thread only) and cannot stop
work stuck in C code (``9^{9^{9^9}}`` makes sympy build a huge integer). So vstar
switches them off and runs every symbolic comparison in a pool of worker processes
(``sys.executable -c ...``, talking over a ``multiprocessing`` pipe; a fresh
interpreter rather than ``multiprocessing`` spawn, so an unguarded user script is
never re-imported and no state is inherited by fork):

  - each comparison gets ``timeout`` seconds: a worker interrupts itself with a timer
    signal at ``timeout``; if it is stuck where signals do not reach, the pool kills it
    at ``timeout + KILL_GRACE_S`` and starts a fresh one when work remains. Either way
    the verdict is ``timeout``, so one bad input costs at most ``timeout + 0.5`` s;
  - a worker that dies (crash, memory limit) gives that comparison an ``error`` verdict;
    the rest of its chunk goes to another worker;
  - work is sent in chunks (one message per chunk, one reply per comparison), and equal
    (gold, answer) pairs of a batch are compared once;
  - workers start lazily on the first comparison that needs one, and stay until
    ``close()`` (or the end of a ``with`` block).

Numbers and identical strings never reach the pool: ``check_many`` decides them in the
calling process (``vstar.checkers.math_answer.quick_compare``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Sequence

from vstar.checkers.math_answer import (
    DEFAULT_REL_TOL,
    EXTRACTION_MODES,
    canonical_answer,
    extract_answer,
    quick_compare,
    symbolic_equal,
)
from vstar.checkers.math_extract import DEFAULT_EXTRACTION
from vstar.checkers.verdict import Verdict

DEFAULT_TIMEOUT_S = 5.0
KILL_GRACE_S = 0.5
START_TIMEOUT_S = 120.0
NO_ANSWER_REASON = "no final answer found (expected \\boxed{...}, '#### X', 'The answer is X', 'Answer: X' or a last line '= X')"

Job = tuple[int, str, str]  # (index in the batch, gold answer, predicted answer)
Outcome = tuple[str, str]  # (status: equal / unequal / timeout / error, reason)


class _SoftTimeout(BaseException):
    """Raised in a worker by its own timer; a BaseException so library code does not swallow it."""


def _raise_soft_timeout(signum: int, frame: object) -> None:
    raise _SoftTimeout()


def _compare_in_worker(gold: str, pred: str, seconds: float) -> Outcome:
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            equal = symbolic_equal(gold, pred)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _SoftTimeout:
        return "timeout", f"symbolic comparison took more than {seconds:g} s"
    except MemoryError:
        return "error", "symbolic comparison ran out of memory"
    except Exception as error:  # a library bug on odd input must not stop the batch
        return "error", f"symbolic comparison failed: {type(error).__name__}"
    return ("equal", "") if equal else ("unequal", "")


_WORKER_CODE = (
    "import sys; from vstar.checkers.math_pool import worker_main; "
    "worker_main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))"
)


def worker_main(fd: int, seconds: float, memory_limit_mb: int) -> None:
    """Worker loop on pipe ``fd``: receive a chunk of jobs, send ``(index, outcome)`` per job.

    ``memory_limit_mb`` <= 0 means no address-space limit.
    """
    conn = Connection(fd)
    if memory_limit_mb > 0:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    signal.signal(signal.SIGALRM, _raise_soft_timeout)
    _compare_in_worker("1", "1", START_TIMEOUT_S)  # import sympy & co. before the first deadline
    try:
        conn.send(("ready", ""))
        while (jobs := conn.recv()) is not None:
            for index, gold, pred in jobs:
                conn.send((index, _compare_in_worker(gold, pred, seconds)))
    except (EOFError, OSError):  # the parent has gone
        return


@dataclass
class _Worker:
    """One worker process and the jobs it holds (sent, not yet answered)."""

    process: subprocess.Popen
    conn: Connection
    started_at: float
    ready: bool = False
    jobs: deque = field(default_factory=deque)
    deadline: float = 0.0


class MathCheckPool:
    """Checks math completions against gold answers; usable as a context manager, not thread-safe.

    ``workers``: worker processes (default: CPU count, at most 4). ``timeout``: seconds
    per symbolic comparison (default 5). ``chunk_size``: comparisons per message.
    ``rel_tol``: numeric tolerance (see ``vstar.checkers.math_answer``).
    ``memory_limit_mb``: address-space limit of each worker (None: no limit).
    ``extraction``: how the final answer is found, ``"strict"`` or ``"flexible"``
    (``vstar.checkers.math_extract.extract_answer``).
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        chunk_size: int = 8,
        rel_tol: float = DEFAULT_REL_TOL,
        memory_limit_mb: int | None = 4096,
        extraction: str = DEFAULT_EXTRACTION,
    ):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        if extraction not in EXTRACTION_MODES:
            raise ValueError(f"extraction must be one of {EXTRACTION_MODES}, got {extraction!r}")
        self.extraction = extraction
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.chunk_size = max(1, chunk_size)
        self.rel_tol = rel_tol
        self.memory_limit_mb = memory_limit_mb
        self._live: list[_Worker] = []

    def __getstate__(self) -> dict:
        """Pickle the settings only (e.g. a task sent to a Ray worker): the copy starts its own workers."""
        return {**self.__dict__, "_live": []}

    def __enter__(self) -> MathCheckPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def check_many(self, golds: Sequence[str], completions: Sequence[str]) -> list[Verdict]:
        """Verdict for ``completions[i]`` against gold answer ``golds[i]``."""
        if len(golds) != len(completions):
            raise ValueError(f"{len(golds)} gold answers for {len(completions)} completions")
        verdicts: list[Verdict | None] = [None] * len(golds)
        undecided: dict[tuple[str, str], list[int]] = {}
        for index, (gold, completion) in enumerate(zip(golds, completions)):
            pred = extract_answer(completion, self.extraction)
            if pred is None:
                verdicts[index] = Verdict(False, "no_answer", reason=NO_ANSWER_REASON)
                continue
            equal = quick_compare(gold, pred, self.rel_tol)
            if equal is None:
                undecided.setdefault((gold, pred), []).append(index)
            else:
                verdicts[index] = _verdict(gold, pred, ("equal", "") if equal else ("unequal", ""))
        pairs = list(undecided)
        for pair, outcome in zip(pairs, self.compare(pairs)):
            for index in undecided[pair]:
                verdicts[index] = _verdict(pair[0], pair[1], outcome)
        return verdicts  # type: ignore[return-value]

    def compare(self, pairs: Sequence[tuple[str, str]]) -> list[Outcome]:
        """math-verify's outcome for each (gold, predicted answer) pair, run in the workers."""
        outcomes: list[Outcome | None] = [None] * len(pairs)
        if not pairs:
            return []
        size = max(1, min(self.chunk_size, -(-len(pairs) // self.workers)))
        jobs = [(index, gold, pred) for index, (gold, pred) in enumerate(pairs)]
        queue: deque[list[Job]] = deque(jobs[start : start + size] for start in range(0, len(jobs), size))
        try:
            while queue or any(worker.jobs for worker in self._live):
                self._start_workers(len(queue))
                self._dispatch(queue)
                self._collect(outcomes, queue)
        except BaseException:  # Ctrl-C or a worker that cannot start: no stale replies later
            self.close()
            raise
        return outcomes  # type: ignore[return-value]

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        """Stop all workers (the pool starts new ones if used again)."""
        for worker in self._live:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        for worker in self._live:
            try:
                worker.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            self._stop(worker)
        self._live = []

    def _start_workers(self, queued_chunks: int) -> None:
        idle = sum(1 for worker in self._live if not worker.jobs)
        wanted = min(self.workers - len(self._live), queued_chunks - idle)
        for _ in range(max(0, wanted)):
            self._live.append(self._start_worker())

    def _start_worker(self) -> _Worker:
        parent_end, child_end = multiprocessing.Pipe()
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        memory = self.memory_limit_mb or 0
        command = [sys.executable, "-c", _WORKER_CODE, str(child_end.fileno()), repr(self.timeout), str(memory)]
        process = subprocess.Popen(
            command, pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, env=env
        )
        child_end.close()
        return _Worker(process, parent_end, time.monotonic())

    def _dispatch(self, queue: deque[list[Job]]) -> None:
        for worker in list(self._live):
            if not (worker.ready and not worker.jobs and queue):
                continue
            chunk = queue.popleft()
            try:
                if worker.process.poll() is not None:
                    raise BrokenPipeError("worker exited while idle")
                worker.conn.send(chunk)
            except (OSError, ValueError):  # died while idle: drop it, the chunk waits for another
                queue.appendleft(chunk)
                self._stop(worker)
                self._live.remove(worker)
                continue
            worker.jobs = deque(chunk)
            worker.deadline = time.monotonic() + self.timeout + KILL_GRACE_S

    def _collect(self, outcomes: list[Outcome | None], queue: deque[list[Job]]) -> None:
        """Wait for replies until the next deadline; handle deaths and overruns."""
        waiting = [worker for worker in self._live if worker.jobs or not worker.ready]
        if not waiting:
            return
        now = time.monotonic()
        next_deadline = min(self._deadline(worker) for worker in waiting)
        ready_conns = wait([worker.conn for worker in waiting], timeout=max(0.0, next_deadline - now))
        for worker in waiting:
            if worker.conn in ready_conns:
                self._receive(worker, outcomes, queue)
        now = time.monotonic()
        for worker in list(self._live):
            if (worker.jobs or not worker.ready) and now > self._deadline(worker):
                self._overrun(worker, outcomes, queue)

    def _deadline(self, worker: _Worker) -> float:
        return worker.deadline if worker.ready else worker.started_at + START_TIMEOUT_S

    def _receive(self, worker: _Worker, outcomes: list[Outcome | None], queue: deque[list[Job]]) -> None:
        try:
            while worker.conn.poll():
                index, outcome = worker.conn.recv()
                if index == "ready":
                    worker.ready = True
                    continue
                outcomes[index] = tuple(outcome)  # type: ignore[assignment]
                worker.jobs.popleft()
                worker.deadline = time.monotonic() + self.timeout + KILL_GRACE_S
        except (EOFError, OSError):
            try:
                code = worker.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
            self._fail(worker, outcomes, queue, ("error", f"math worker died (exit code {code})"))

    def _overrun(self, worker: _Worker, outcomes: list[Outcome | None], queue: deque[list[Job]]) -> None:
        if not worker.ready:
            self._stop(worker)
            self._live.remove(worker)
            raise RuntimeError(f"a math checking worker did not start within {START_TIMEOUT_S:g} s")
        reason = f"symbolic comparison took more than {self.timeout:g} s (worker killed)"
        self._fail(worker, outcomes, queue, ("timeout", reason))

    def _fail(self, worker: _Worker, outcomes: list[Outcome | None], queue: deque[list[Job]], outcome: Outcome) -> None:
        """Give the worker's current job ``outcome``, requeue the rest, remove the worker."""
        self._stop(worker)
        self._live.remove(worker)
        if not worker.ready:
            raise RuntimeError(f"a math checking worker exited while starting: {outcome[1]}")
        if worker.jobs:
            outcomes[worker.jobs.popleft()[0]] = outcome
        if worker.jobs:
            queue.appendleft(list(worker.jobs))

    @staticmethod
    def _stop(worker: _Worker) -> None:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker.conn.close()


def _verdict(gold: str, pred: str, outcome: Outcome) -> Verdict:
    """The verdict for predicted answer ``pred`` given the comparison ``outcome``."""
    status, reason = outcome
    answer = canonical_answer(pred)
    if status == "equal":
        return Verdict(True, "passed", answer=answer, answer_correct=True)
    if status == "unequal":
        return Verdict(False, "failed", answer=answer, reason=f"answer {answer!r} differs from gold {gold!r}")
    return Verdict(False, status, answer=answer, reason=reason)
