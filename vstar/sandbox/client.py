"""The harness side of one sandbox worker: start it, send jobs, read replies, stop it.

A job goes as a 4-byte big-endian length, then the marshalled job (the worker runs this
same interpreter). A reply comes as the worker's fixed ``REPLY`` header, then the raw report
and output bytes whose sizes it gives: nothing that comes out of the sandbox is unmarshalled
here. A worker says ``READY`` once, when it has started.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import struct
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, NamedTuple

from vstar.sandbox.worker import READY, REPLY
from vstar.errors import VstarError

START_TIMEOUT_S = 60.0
STOP_GRACE_S = 2.0
MAX_REPLY = 1 << 30  # report and output bytes (the worker caps both far below)
READ_BYTES = 1 << 16  # read from a worker at least this much at once, when it is there
PROGRAM_ENV = {"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}  # all programs see
# The worker starts with LD_BIND_NOW too, and drops it: the dynamic linker then binds every C
# function once, at start-up, rather than in each child at its first call (a page copy each).
WORKER_ENV = {**PROGRAM_ENV, "LD_BIND_NOW": "1"}
BWRAP_HINT = (
    " bubblewrap needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on "
    "Ubuntu 24.04 also kernel.apparmor_restrict_unprivileged_userns=0) or root; inside Docker run "
    "with --security-opt seccomp=unconfined --cap-add SYS_ADMIN or use isolation: rlimits (weaker)."
)


def frame(message: dict[str, Any]) -> bytes:
    """A job as the worker reads it: 4-byte big-endian length, then the marshalled job."""
    data = marshal.dumps(message)
    return struct.pack(">I", len(data)) + data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:  # the worker is gone: its start fails and says why
        pass


class Reply(NamedTuple):
    """What a worker says of one job (exit code and signal: None where there is none)."""

    exit_code: int | None
    signal: int | None
    elapsed: float
    timed_out: bool
    report_overflow: bool
    output_total: int
    report: bytes
    output: bytes


class WorkerLost(Exception):
    """The worker died or stopped answering; the job it held gets an error verdict."""


class SandboxWorker:
    """One worker process (inside bwrap, or plain in rlimits mode)."""

    def __init__(self, make_command: Callable[[], list[str]], isolation: str, code: bytes):
        self.isolation = isolation
        self._make_command = make_command  # a fresh command line per start (bwrap as root: a new uid)
        self._code = code  # what the worker reads first: its own code (see sandbox.BOOT)
        self._start(make_command())

    def _start(self, command: list[str]) -> None:
        self._stderr = tempfile.TemporaryFile()
        self._buffer = bytearray()  # reply bytes read but not yet taken
        self.unanswered = 0  # jobs sent whose replies were not taken (a batch that stopped early)
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
            env={} if self.isolation == "bwrap" else dict(WORKER_ENV),
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
        # from a thread: the code may exceed the pipe's buffer, and a worker that fails to start
        # never reads it (the write then fails once the worker is gone)
        writer = threading.Thread(target=_write_all, args=(self.process.stdin.fileno(), self._code), daemon=True)
        writer.start()
        try:
            if self._read(len(READY), time.monotonic() + START_TIMEOUT_S) != READY:
                raise WorkerLost("sandbox worker sent a malformed greeting")
        except WorkerLost as lost:
            details = self._stderr_text()
            self.stop()
            hint = BWRAP_HINT if details.startswith("bwrap:") else ""
            message = f"code sandbox: the worker did not start ({lost}): {details or 'no message'}.{hint}"
            raise VstarError(message) from None
        finally:
            writer.join()

    def send(self, data: bytes) -> bool:
        """Send one framed job (see ``frame``); False if the worker is gone."""
        try:
            self.process.stdin.write(data)  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            return False
        self.unanswered += 1
        return True

    def receive(self, timeout: float) -> Reply:
        """The reply to the oldest job sent. Raises ``WorkerLost``."""
        deadline = time.monotonic() + timeout
        exit_code, signal_number, elapsed, timed_out, overflow, total, report_size, output_size = REPLY.unpack(
            self._read(REPLY.size, deadline)
        )
        if report_size + output_size > MAX_REPLY:
            raise WorkerLost("sandbox worker sent a malformed reply")
        blob = self._read(report_size + output_size, deadline)
        self.unanswered -= 1
        return Reply(
            None if exit_code < 0 else exit_code,
            None if signal_number < 0 else signal_number,
            elapsed,
            timed_out,
            overflow,
            total,
            blob[:report_size],
            blob[report_size:],
        )

    def _read(self, size: int, deadline: float) -> bytes:
        """``size`` bytes of the worker's replies. Reads what is there, up to 64 KiB at a time
        (a whole reply, usually), and keeps what follows for the next call."""
        fd = self.process.stdout.fileno()  # type: ignore[union-attr]
        buffered = self._buffer
        while len(buffered) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerLost("sandbox worker did not answer in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, min(max(size - len(buffered), READ_BYTES), 1 << 20))
            if not chunk:
                try:
                    code = self.process.wait(1.0)
                except subprocess.TimeoutExpired:
                    code = None
                last_line = (self._stderr_text().splitlines() or [""])[-1]
                raise WorkerLost(f"sandbox worker exited (status {code}) {last_line}".strip())
            buffered += chunk
        data = bytes(buffered[:size])
        del buffered[:size]
        return data

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode(errors="replace").strip()

    def restart(self) -> None:
        """Kill a lost worker at once and start a fresh one."""
        self.stop(grace=0.0)
        self._start(self._make_command())

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Close the worker's input (it exits when idle), then kill it if it lingers."""
        process = self.process
        try:
            process.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        self._stderr.close()
