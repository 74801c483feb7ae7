"""The harness side of one sandbox worker: start it, send jobs, read replies, stop it.

Frames in both directions: 4-byte big-endian length, then JSON. A reply's JSON header
gives the lengths of the raw report and output bytes that follow it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import tempfile
import time
from typing import Any

from vstar.errors import VstarError

START_TIMEOUT_S = 60.0
STOP_GRACE_S = 2.0
MAX_HEADER = 1 << 20
PLAIN_ENV = {"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8"}
BWRAP_HINT = (
    " bubblewrap needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on "
    "Ubuntu 24.04 also kernel.apparmor_restrict_unprivileged_userns=0) or root; inside Docker run "
    "with --security-opt seccomp=unconfined --cap-add SYS_ADMIN or use isolation: rlimits (weaker)."
)


class WorkerLost(Exception):
    """The worker died or stopped answering; the job it held gets an error verdict."""


class SandboxWorker:
    """One worker process (inside bwrap, or plain in rlimits mode)."""

    def __init__(self, command: list[str], isolation: str):
        self.isolation = isolation
        self._start(command)

    def _start(self, command: list[str]) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
            env={} if self.isolation == "bwrap" else dict(PLAIN_ENV),
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
        try:
            self._receive(time.monotonic() + START_TIMEOUT_S)
        except WorkerLost as lost:
            details = self._stderr_text()
            self.stop()
            hint = BWRAP_HINT if details.startswith("bwrap:") else ""
            message = f"code sandbox: the worker did not start ({lost}): {details or 'no message'}.{hint}"
            raise VstarError(message) from None

    def run(self, message: dict[str, Any], deadline: float) -> tuple[dict[str, Any], bytes, bytes]:
        """Send one job; (header, report bytes, output bytes). Raises ``WorkerLost``."""
        data = json.dumps(message).encode()
        try:
            self.process.stdin.write(struct.pack(">I", len(data)) + data)  # type: ignore[union-attr]
        except (BrokenPipeError, OSError) as error:
            raise WorkerLost(f"sandbox worker gone: {error}") from None
        header, blob = self._receive(time.monotonic() + deadline)
        report_size = int(header["report_bytes"])
        return header, blob[:report_size], blob[report_size:]

    def _receive(self, deadline: float) -> tuple[dict[str, Any], bytes]:
        size = struct.unpack(">I", self._read(4, deadline))[0]
        if size > MAX_HEADER:
            raise WorkerLost("sandbox worker sent a malformed reply")
        header = json.loads(self._read(size, deadline))
        extra = int(header.get("report_bytes", 0)) + int(header.get("output_bytes", 0))
        return header, self._read(extra, deadline) if extra else b""

    def _read(self, size: int, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()  # type: ignore[union-attr]
        parts, left = [], size
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerLost("sandbox worker did not answer in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                try:
                    code = self.process.wait(1.0)
                except subprocess.TimeoutExpired:
                    code = None
                last_line = (self._stderr_text().splitlines() or [""])[-1]
                raise WorkerLost(f"sandbox worker exited (status {code}) {last_line}".strip())
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-4000:].decode(errors="replace").strip()

    def restart(self, command: list[str]) -> None:
        """Kill a lost worker at once and start a fresh one."""
        self.stop(grace=0.0)
        self._start(command)

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
