"""The code sandbox: run model-written programs isolated, many in parallel.

``Sandbox`` keeps ``workers`` long-lived worker processes (``worker.py``),
each inside its own bubblewrap sandbox:

  - no network (own network namespace), own PID / IPC / UTS / cgroup namespaces;
  - a new empty root holding only read-only system directories (``/usr``, ``/lib*``,
    ``/bin``, ``/sbin``) and the Python installation; nothing else of the host (no
    ``/home``, ``/root``, ``/etc``, ``/proc``, data sets or checkouts); a private tmpfs
    ``/tmp`` and ``/dev/shm`` (wiped after every program), a minimal read-only ``/dev``;
  - a cleared environment, all capabilities dropped, ``--die-with-parent``. When the
    harness runs as root, the worker keeps CAP_SETUID/CAP_SETGID only long enough to
    switch to an unused uid (random per worker), so the process limit counts its
    programs alone; otherwise bwrap maps the user into a new user namespace.

Every program runs in a fresh child forked by a worker (one interpreter start per
worker, not per program; the worker compiles the program before forking, so a
compiler crash costs a worker restart, not the harness) with rlimits on address
space, CPU time, file size and processes, and a wall-clock deadline after which the
whole process tree is killed. The worker is PID 1 of its namespace, so a program can
neither kill it nor leave a process behind. Verdicts are decided in this process
from the child's report (``vstar.checkers.code``).

``isolation: "rlimits"`` is a weaker mode for machines without bubblewrap: the same
workers and rlimits, a process group, a per-program scratch directory and a cleared
environment; as root, an unused uid when the Python installation is readable by other
users (else the programs run as root). The program can read (and write) what its user
can, and use the network. It logs a warning.

Interpreter: the real file behind ``sys.executable`` with ``-s -S -B`` and a cleared
environment; ``-I`` is not used because it would ignore ``PYTHONHASHSEED=0``, which
makes set/dict iteration order, and so verdicts, reproducible.
"""

from __future__ import annotations

import functools
import json
import logging
import marshal
import os
import random
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from vstar.sandbox.assert_rewrite import compile_test
from vstar.sandbox.client import WORKER_ENV, SandboxWorker, WorkerLost, frame
from vstar.sandbox.runner import report_tag
from vstar.errors import VstarError

log = logging.getLogger(__name__)

ISOLATIONS = ("bwrap", "rlimits")
WORKER_MODULES = ("worker", "runner", "values", "cleanup")  # the files of this package a worker runs
PIPELINE_BYTES = 16 << 10  # larger jobs wait for the reply before them (no pipe can fill both ways)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The worker's code comes compiled (``worker_code``), on its stdin before any job, its size in
# argv[1]; it runs as __main__ with all that was sent in ``__boot__``. The worker then
# compiles nothing to start: it starts sooner, and its memory keeps no compiler leftovers
# (every fork copies the page tables of all of it).
BOOT = """import marshal, os, sys
del sys.path[0]
size, data = int(sys.argv[1]), b""
while len(data) < size:
    chunk = os.read(0, size - len(data))
    if not chunk:
        sys.exit("sandbox worker: its code did not arrive")
    data += chunk
boot = marshal.loads(data)
exec(boot["modules"]["worker"], {"__name__": "__main__", "__boot__": boot})
"""
# The job each worker runs in itself once at start (``runner.rehearse``): a passing
# one-line ``assert a == b``, a failing one, one that raises, and asserts in the general form.
REHEARSAL_PROGRAM = "def rehearsal(n):\n    return [n, n / 4, str(n), (n, None), {'key': [n, True]}, {n}]\n"
REHEARSAL_TESTS = (
    "assert rehearsal(1) == [1, 0.25, '1', (1, None), {'key': [1, True]}, {1}]",
    "assert rehearsal(2)[0] == 3",
    "assert rehearsal(None) == []",
    "assert rehearsal(1)[0] < 2\nassert rehearsal(1)\nassert not rehearsal(0)[0]\n",
)
RLIMITS_WARNING = (
    "code sandbox: isolation 'rlimits' runs programs WITHOUT bubblewrap: only rlimits, a process "
    "group and a cleared environment protect this machine (programs can read your files and use "
    "the network). Use isolation 'bwrap' (install the OS package 'bubblewrap') for untrusted code."
)


@dataclass(frozen=True)
class SandboxOptions:
    """How programs are run. Each field is also a key of the ``options`` mappings."""

    isolation: str = "bwrap"  # "bwrap" (default) or "rlimits" (weaker, logs a warning)
    timeout: float = 5.0  # wall-clock seconds per program, its tests included
    memory_mb: int = 1024  # address-space limit per program
    workers: int | None = None  # parallel workers; None = number of CPUs
    bwrap_path: str = "bwrap"  # the bubblewrap binary (a name looked up on PATH, or a path)
    max_processes: int = 64  # process/thread limit per program (RLIMIT_NPROC)
    file_size_mb: int = 16  # largest file a program may write (RLIMIT_FSIZE)
    output_kb: int = 64  # program output kept for diagnostics (the rest is read and dropped)

    @property
    def worker_count(self) -> int:
        return self.workers or len(os.sched_getaffinity(0))


SANDBOX_OPTION_KEYS = tuple(f.name for f in fields(SandboxOptions))
_POSITIVE_INTS = ("memory_mb", "max_processes", "file_size_mb", "output_kb")


def sandbox_options(options: Mapping[str, Any] | None, where: str = "sandbox options") -> SandboxOptions:
    """Validated ``SandboxOptions`` from a mapping; errors name ``<where>.<key>``."""
    options = dict(options or {})
    for key in options:
        if key not in SANDBOX_OPTION_KEYS:
            raise VstarError(f"{where}.{key}: unknown option. Accepted: {', '.join(SANDBOX_OPTION_KEYS)}")
    isolation = options.get("isolation", "bwrap")
    if isolation not in ISOLATIONS:
        raise VstarError(f"{where}.isolation: expected one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    timeout = options.get("timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise VstarError(f"{where}.timeout: expected seconds > 0 and <= 3600, got {timeout!r}")
    for key in _POSITIVE_INTS + ("workers",):
        value = options.get(key)
        if value is None and key == "workers" or key not in options:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise VstarError(f"{where}.{key}: expected an integer >= 1, got {value!r}")
    if not isinstance(options.get("bwrap_path", "bwrap"), (str, Path)):
        raise VstarError(f"{where}.bwrap_path: expected a path or a command name")
    options["timeout"] = float(timeout)
    if "bwrap_path" in options:
        options["bwrap_path"] = str(options["bwrap_path"])
    return SandboxOptions(**options)


@dataclass(frozen=True)
class _Flight:
    """One job on its way to a worker: its place in the batch, nonce and encoded frame."""

    index: int
    nonce: str
    data: bytes


@dataclass
class RunResult:
    """What happened to one program, as the worker saw it (verdicts are made from this)."""

    records: list[list] = field(default_factory=list)  # the child's report, tags checked and removed
    exit_code: int | None = None
    signal: int | None = None  # the signal that ended the child, if one did
    timed_out: bool = False
    report_overflow: bool = False
    worker_error: str | None = None  # the worker itself failed (the program killed it, ...)
    elapsed: float = 0.0
    output: bytes = b""  # the first ``output_kb`` KiB of stdout + stderr
    output_total: int = 0  # bytes the program wrote in all


class Sandbox:
    """A pool of sandbox workers. ``run`` takes jobs (program, setup, tests) and returns ``RunResult``s.

    Use as a context manager or call ``close()``; workers start in the constructor, so a
    machine where bubblewrap cannot run fails here with a ``VstarError`` saying why.
    """

    def __init__(self, options: SandboxOptions | Mapping[str, Any] | None = None):
        if not isinstance(options, SandboxOptions):
            options = sandbox_options(options)
        self.options = options
        if options.isolation == "rlimits":
            log.warning(RLIMITS_WARNING)
        self._command = _worker_command(options)
        count = options.worker_count
        # Workers are started from the pool's own threads: bwrap's --die-with-parent follows the
        # thread that started it, and these threads live exactly as long as the sandbox.
        self._executor = ThreadPoolExecutor(count, thread_name_prefix="vstar-sandbox")
        self._workers: list[SandboxWorker] = []
        self._lock = threading.Lock()  # one batch at a time
        self._closed = False
        try:
            starts = [self._executor.submit(self._new_worker, cpu) for cpu in _worker_cpus(count)]
            self._workers = [start.result() for start in starts]
        except BaseException:
            self.close()
            raise

    def _new_worker(self, cpu: int | None) -> SandboxWorker:
        return SandboxWorker(lambda: self._command(cpu), self.options.isolation, worker_code())

    def run(
        self,
        jobs: Sequence[Mapping[str, Any]],
        prepare: Callable[[int, Mapping[str, Any]], Mapping[str, Any]] | None = None,
        finish: Callable[[int, RunResult], Any] | None = None,
    ) -> list[Any]:
        """Run each job ``{"program", "setup", "tests"}`` (tests: from ``compile_test``); a
        ``RunResult`` per job, or what ``finish(index, result)`` makes of it.

        Each worker's thread takes the next job until none is left; one batch at a time.
        ``prepare(index, job)``, if given, turns a job into that form in the worker's thread,
        while the worker runs the job before it; ``finish`` runs there too, once the worker has
        its next job (an exception in either stops the batch and is raised). A small next job
        is sent before the reply to the current one is read, so the worker finds it waiting
        when it finishes.
        """
        if self._closed:
            raise VstarError("the code sandbox was closed")
        results: list[Any] = [None] * len(jobs)
        order = iter(range(len(jobs)))
        take = threading.Lock()
        stop = threading.Event()

        def next_flight() -> _Flight | None:
            with take:
                index = None if stop.is_set() else next(order, None)
            if index is None:
                return None
            job = jobs[index] if prepare is None else prepare(index, jobs[index])
            return self._flight(index, job)

        def deliver(worker: SandboxWorker, flight: _Flight) -> bool:
            if worker.send(flight.data):
                return True
            worker.restart()  # gone between jobs: the job has not started anywhere
            return worker.send(flight.data)

        def serve(worker: SandboxWorker) -> None:
            try:
                if worker.unanswered:  # an earlier batch stopped with a job in it: its reply would come first
                    worker.restart()
                flight = next_flight()
                sent = flight is not None and deliver(worker, flight)
                while flight is not None:
                    following = next_flight()  # prepared while the worker runs ``flight``
                    early = following is not None and sent and len(following.data) <= PIPELINE_BYTES
                    early = early and worker.send(following.data)  # type: ignore[union-attr]
                    result, lost = self._receive(worker, flight, sent)
                    if lost:
                        worker.restart()
                        early = False  # the lost worker took the early job with it
                    sent = early or (following is not None and deliver(worker, following))
                    results[flight.index] = result if finish is None else finish(flight.index, result)
                    flight = following
            except BaseException:
                stop.set()
                raise

        with self._lock:
            served = [self._executor.submit(serve, worker) for worker in self._workers]
            wait(served)
            for future in served:
                future.result()  # raise what a worker thread raised, once all have stopped
        return results

    def _flight(self, index: int, job: Mapping[str, Any]) -> _Flight:
        options = self.options
        nonce = secrets.token_hex(16)
        message = {
            "program": job["program"],
            "setup": job.get("setup", ""),
            "tests": list(job["tests"]),
            "nonce": nonce,
            "limits": {
                "timeout": options.timeout,
                "memory": options.memory_mb << 20,
                "file_size": options.file_size_mb << 20,
                "processes": options.max_processes,
                "output_cap": options.output_kb << 10,
            },
        }
        return _Flight(index, nonce, frame(message))

    def _receive(self, worker: SandboxWorker, flight: _Flight, sent: bool) -> tuple[RunResult, bool]:
        """(the job's result, whether the worker was lost and must be restarted)."""
        try:
            if not sent:
                raise WorkerLost("sandbox worker gone: it did not take the job")
            reply = worker.receive(timeout=self.options.timeout + 10.0)
        except WorkerLost as lost:
            return RunResult(worker_error=str(lost)), True
        result = RunResult(
            records=_parse_report(reply.report, flight.nonce),
            exit_code=reply.exit_code,
            signal=reply.signal,
            timed_out=reply.timed_out,
            report_overflow=reply.report_overflow,
            elapsed=reply.elapsed,
            output=reply.output,
            output_total=reply.output_total,
        )
        return result, False

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
        self._executor.shutdown(wait=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _parse_report(report: bytes, nonce: str) -> list[list]:
    """The records of the report's lines whose tag matches (see ``runner``); the rest
    is ignored."""
    key, bodies = nonce.encode(), []
    for line in report.split(b"\n"):
        body = line[36:-1]  # after '["' + 32 hex digits + '",'
        if line[:2] == b'["' and line[34:36] == b'",' and line[-1:] == b"]" and line[2:34] == report_tag(key, body):
            bodies.append(body)
    try:  # all lines at once
        records = json.loads(b"[" + b",".join(bodies) + b"]") if bodies else []
    except (ValueError, RecursionError):  # a tagged line that is not JSON: keep the others
        records = [record for body in bodies for record in _decode_line(body)]
    return [record for record in records if type(record) is list and record]


def _decode_line(body: bytes) -> list:
    try:
        return json.loads(b"[" + body + b"]")
    except (ValueError, RecursionError):
        return []


# ------------------------------------------------------------------ the worker command


@functools.lru_cache(maxsize=1)
def worker_code() -> bytes:
    """What a worker reads first, marshalled: the sandbox modules, compiled here (the worker
    runs this same interpreter), and the rehearsal job."""
    modules = {}
    for name in WORKER_MODULES:
        path = Path(__file__).with_name(name + ".py")
        modules[name] = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    return marshal.dumps({"modules": modules, "rehearsal": rehearsal_job()})


def rehearsal_job() -> dict[str, Any]:
    """The rehearsal program and tests as a worker job (tests compiled as for any job)."""
    tests = [compile_test(test) for test in REHEARSAL_TESTS]
    return {"nonce": "0" * 32, "setup": "", "program": REHEARSAL_PROGRAM, "tests": tests}


def _worker_command(options: SandboxOptions):
    """A function of the worker's CPU (or None) giving a fresh worker command line (bwrap mode:
    a new uid each call, as root). The worker then reads ``worker_code()`` from its stdin."""
    python = os.path.realpath(sys.executable)
    flags = [python, "-s", "-S", "-B", "-c", BOOT, str(len(worker_code()))]
    if options.isolation == "rlimits":

        # As root, programs run as an unused uid, unless Python is unreadable to other users
        # (e.g. installed under /root): then they run as root, which the warning covers.
        drop_uid = os.geteuid() == 0 and _readable_by_anyone(sysconfig.get_paths()["stdlib"])

        def plain_command(cpu: int | None) -> list[str]:
            drop = ["--drop-uid", str(_random_uid())] if drop_uid else []
            return flags + ["--mode", "rlimits"] + drop + _cpu_argument(cpu)

        return plain_command
    bwrap = _find_bwrap(options.bwrap_path)
    features = _bwrap_features(bwrap)

    def command(cpu: int | None) -> list[str]:
        root = os.geteuid() == 0
        args = [bwrap] + _bwrap_arguments(python, root, features) + flags + ["--mode", "bwrap"]
        return args + (["--drop-uid", str(_random_uid())] if root else []) + _cpu_argument(cpu)

    return command


def _worker_cpus(count: int) -> list[int | None]:
    """The CPU each worker is pinned to: one worker per allowed CPU (or two per CPU, ...) keeps
    a worker and its programs on one CPU's caches. Other counts would load CPUs unevenly: None."""
    allowed = sorted(os.sched_getaffinity(0))
    if count % len(allowed):
        return [None] * count
    return [allowed[i % len(allowed)] for i in range(count)]


def _cpu_argument(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["--cpu", str(cpu)]


def _readable_by_anyone(path: str) -> bool:
    """Whether a user with no special rights can read ``path`` (every ancestor searchable)."""
    target = Path(os.path.realpath(path))
    for directory in [target, *target.parents]:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(target.stat().st_mode & stat.S_IROTH)


def _random_uid() -> int:
    """An unused-looking uid for one worker's programs (root only): far above real accounts."""
    return random.SystemRandom().randrange(0x20000000, 0x7FFF0000)


def _find_bwrap(path: str) -> str:
    found = shutil.which(path)
    if found is None:
        raise VstarError(
            f"code sandbox: bubblewrap not found ({path!r}). Install the OS package 'bubblewrap' "
            "(Debian/Ubuntu: apt-get install bubblewrap), set the sandbox option bwrap_path, or set "
            "isolation: rlimits to run programs with rlimits only (much weaker: no file-system or "
            "network isolation)."
        )
    return found


def _bwrap_features(bwrap: str) -> frozenset[str]:
    """Options this bwrap version knows (``--size``, ``--disable-userns`` are recent)."""
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise VstarError(f"code sandbox: cannot run {bwrap}: {error}") from None
    return frozenset(word for word in ("--size", "--disable-userns", "--perms") if word in text)


def _python_roots(python: str) -> list[str]:
    """Directories the interpreter needs, outside the system directories bound anyway."""
    candidates = {sys.base_prefix, sys.base_exec_prefix, str(Path(python).parent.parent)}
    roots = sorted(os.path.realpath(path) for path in candidates)
    kept: list[str] = []
    for root in roots:
        inside_system = any(root == d or root.startswith(d + "/") for d in SYSTEM_DIRS)
        if not inside_system and not any(root.startswith(k + "/") for k in kept):
            kept.append(root)
    return kept


def _bwrap_arguments(python: str, root: bool, features: frozenset[str]) -> list[str]:
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if root:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--cap-drop", "ALL"]
        args += ["--disable-userns"] if "--disable-userns" in features else []
    args += ["--die-with-parent", "--new-session", "--as-pid-1", "--hostname", "sandbox", "--clearenv"]
    for key, value in WORKER_ENV.items():
        args += ["--setenv", key, value]
    for directory in SYSTEM_DIRS:
        args += ["--ro-bind-try", directory, directory]
    for directory in _python_roots(python):
        args += _parent_dirs(directory) + ["--ro-bind", directory, directory]
    args += ["--dev", "/dev"]
    args += _tmpfs("/dev/shm", 64 << 20, features) + _tmpfs("/tmp", 256 << 20, features)
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"]
    return args


def _parent_dirs(path: str) -> list[str]:
    """``--dir`` for each ancestor of ``path``: bwrap would create them mode 0700 (unreadable after the uid switch)."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        args += ["--dir", "/" + "/".join(parts[:depth])]
    return args


def _tmpfs(path: str, size: int, features: frozenset[str]) -> list[str]:
    args = ["--perms", "1777"] if "--perms" in features else []
    args += ["--size", str(size)] if "--size" in features else []
    return args + ["--tmpfs", path]
