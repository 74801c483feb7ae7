"""The sandbox worker: a long-lived process that forks one fresh child per program.

Standard library only. The harness (``sandbox.py``) starts it, inside bubblewrap or
as a plain process (``--mode rlimits``), with

    python -s -S -B -c BOOT <this file> --mode bwrap|rlimits [--drop-uid N]

and talks to it over stdin/stdout in frames (4-byte big-endian length + JSON). For
each job the worker forks a child that sets its limits and runs
``sandbox_runner.run``; the worker watches the child's output pipe, report pipe and
exit, kills it at the wall-clock deadline, then kills every process the program
left behind and wipes the scratch directories, so nothing of one program survives
into the next. Reply: a JSON header, then the raw report bytes, then the first
bytes of the program's output.

Inside bubblewrap the worker is PID 1 of its own PID namespace (``--as-pid-1``):
programs cannot kill it, orphans are re-parented to it, and ``kill(-1)`` reaches
every other process in the sandbox.
"""

import gc
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import types

# Imported once here so each forked child starts with them (copy-on-write, no import cost).
# Kept to light modules that model-written code often imports: a bigger worker forks slower.
PRELOAD = (
    "array", "bisect", "cmath", "collections", "copy", "functools", "heapq", "itertools",
    "math", "operator", "re", "string", "typing",
)
CHUNK = 1 << 16
REPORT_LIMIT = 64 << 20  # bytes of report before the child is stopped
KILL_GRACE = 2.0  # seconds to wait for pipes to close after everything is killed


def main(argv: list) -> None:
    mode = argv[argv.index("--mode") + 1]
    drop_uid = int(argv[argv.index("--drop-uid") + 1]) if "--drop-uid" in argv else None
    if mode == "bwrap" and drop_uid is not None:
        for path in ("/tmp", "/dev/shm"):
            os.chmod(path, 0o1777)  # the tmpfs belongs to root; the sandbox user must write it
        _become(drop_uid)
        drop_uid = None  # already dropped: the children inherit it
    _prctl(1 if mode == "bwrap" else 36, signal.SIGKILL if mode == "bwrap" else 1)
    for name in PRELOAD:
        __import__(name)
    runner = _load_runner()
    gc.freeze()  # the children's garbage collector then leaves the shared pages alone (fewer copies)
    channel_in, channel_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    worker = Worker(mode, drop_uid, runner)
    _send(channel_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid()}, b"")
    try:
        while True:
            job = _receive(channel_in)
            if job is None:
                break
            header, blob = worker.run(job)
            _send(channel_out, header, blob)
    finally:
        worker.close()


def _become(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _prctl(option: int, value: int) -> None:
    """bwrap: PR_SET_PDEATHSIG (1), to die with bwrap even after a uid change cleared it;
    rlimits: PR_SET_CHILD_SUBREAPER (36), so that orphans of a program come back here."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except Exception:
        pass
    for name in [name for name in sys.modules if name.startswith(("ctypes", "_ctypes"))]:
        del sys.modules[name]


def _load_module(name: str) -> types.ModuleType:
    """Load a sibling file with its own copy of the builtins (a program's patches miss it)."""
    import builtins

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    module = types.ModuleType("_vstar_" + name)
    module.__dict__["__builtins__"] = dict(builtins.__dict__)
    module.__dict__["__file__"] = path
    with open(path, "rb") as handle:
        exec(compile(handle.read(), path, "exec", dont_inherit=True), module.__dict__)
    return module


def _load_runner() -> types.ModuleType:
    runner = _load_module("sandbox_runner")
    runner.sandbox_values = _load_module("sandbox_values")
    return runner


# ------------------------------------------------------------------ framing


def _send(fd: int, header: dict, blob: bytes) -> None:
    data = json.dumps(header).encode()
    data = struct.pack(">I", len(data)) + data + blob
    while data:
        data = data[os.write(fd, data):]


def _read_exactly(fd: int, size: int):
    parts, left = [], size
    while left:
        chunk = os.read(fd, min(left, CHUNK))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _receive(fd: int):
    head = _read_exactly(fd, 4)
    if head is None:
        return None
    body = _read_exactly(fd, struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body)


# ------------------------------------------------------------------ running one job


class Worker:
    """Runs jobs one at a time: fork, watch, kill what is left, clean up."""

    def __init__(self, mode: str, drop_uid, runner: types.ModuleType):
        self.mode = mode
        self.drop_uid = drop_uid  # rlimits mode as root: each child runs as this uid
        self.runner = runner
        self.scratch_root = None if mode == "bwrap" else _make_scratch_root(drop_uid)
        self.process_limit_base = 0 if mode == "bwrap" or drop_uid is not None else _count_own_processes()

    def run(self, job: dict):
        workdir = self._workdir()
        out_r, out_w = os.pipe()
        report_r, report_w = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._child(job, workdir, out_w, report_w)
        os.close(out_w)
        os.close(report_w)
        watch = Watch(pid, out_r, report_r, int(job["limits"]["output_cap"]))
        watch.wait(started + float(job["limits"]["timeout"]))
        exit_code, signal_number = _decode_status(self._kill_leftovers(pid))
        watch.drain(time.monotonic() + KILL_GRACE)
        self._clean(workdir)
        header = {
            "exit_code": exit_code,
            "signal": signal_number,
            "timed_out": watch.timed_out,
            "report_overflow": watch.report_overflow,
            "elapsed": time.monotonic() - started,
            "output_total": watch.output_total,
            "report_bytes": len(watch.report),
            "output_bytes": len(watch.output),
        }
        return header, bytes(watch.report) + bytes(watch.output)

    def _child(self, job: dict, workdir: str, out_w: int, report_w: int) -> None:
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.dup2(report_w, 3)
            os.closerange(4, 4096)
            if self.drop_uid is not None:
                _become(self.drop_uid)
            os.chdir(workdir)
            os.umask(0o077)
            self._set_limits(job["limits"])
            self.runner.run(job, 3)
        finally:
            os._exit(70)

    def _set_limits(self, limits: dict) -> None:
        cpu = int(float(limits["timeout"])) + 1
        _lower_limit(resource.RLIMIT_AS, int(limits["memory"]))
        _lower_limit(resource.RLIMIT_CPU, cpu, cpu + 1)  # SIGXCPU, then SIGKILL a second later
        _lower_limit(resource.RLIMIT_FSIZE, int(limits["file_size"]))
        _lower_limit(resource.RLIMIT_CORE, 0)
        _lower_limit(resource.RLIMIT_NPROC, self.process_limit_base + int(limits["processes"]))

    def _workdir(self) -> str:
        if self.scratch_root is None:
            return "/tmp"
        path = os.path.join(self.scratch_root, "run")
        os.mkdir(path, 0o700)
        if self.drop_uid is not None:
            os.chown(path, self.drop_uid, self.drop_uid)
        return path

    def _kill_leftovers(self, pid: int) -> int:
        """Kill the child and everything it started; return the child's wait status."""
        give_up = time.monotonic() + KILL_GRACE
        if self.mode == "bwrap":
            return _kill_namespace(pid, give_up)
        _signal_group(pid)  # the child leads its own session: a program cannot leave this group
        _, status = os.waitpid(pid, 0)
        if self.drop_uid is not None:
            _kill_matching(lambda uid, parent: uid == self.drop_uid, give_up, with_parent=False)
        else:  # orphans come back to this worker (a child subreaper)
            me = os.getpid()
            _kill_matching(lambda uid, parent: parent == me, give_up, with_parent=True)
        return status

    def _clean(self, workdir: str) -> None:
        if self.mode == "bwrap":
            _empty_directory("/tmp")
            _empty_directory("/dev/shm")
        else:
            _empty_directory(workdir)
            os.rmdir(workdir)

    def close(self) -> None:
        if self.scratch_root is not None:
            _empty_directory(self.scratch_root)
            os.rmdir(self.scratch_root)


def _lower_limit(which: int, soft: int, hard=None) -> None:
    """Set a limit, never above the current hard limit (raising it needs privileges)."""
    _, current_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


class Watch:
    """Reads a child's output and report while waiting for it to exit or its deadline."""

    def __init__(self, pid: int, out_fd: int, report_fd: int, output_cap: int):
        self.pid = pid
        self.output = bytearray()
        self.output_cap = output_cap
        self.output_total = 0
        self.report = bytearray()
        self.timed_out = False
        self.report_overflow = False
        self.poller = select.poll()
        self.open_fds = {out_fd, report_fd}
        self.out_fd, self.report_fd = out_fd, report_fd
        for fd in self.open_fds:
            self.poller.register(fd, select.POLLIN)
        self.pidfd = _pidfd(pid)
        if self.pidfd is not None:
            self.poller.register(self.pidfd, select.POLLIN)

    def wait(self, deadline: float) -> None:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.timed_out = True
                return
            wait_ms = left * 1000 if self.pidfd is not None else min(left * 1000, 5)
            events = self.poller.poll(wait_ms)
            exited = any(fd == self.pidfd for fd, _ in events) or (self.pidfd is None and _has_exited(self.pid))
            for fd, _ in events:
                if fd != self.pidfd:
                    self._read(fd)
            if self.report_overflow or exited:
                return

    def drain(self, deadline: float) -> None:
        """After everything is killed: read what is left until both pipes close."""
        if self.pidfd is not None:
            self.poller.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        while self.open_fds and time.monotonic() < deadline:
            for fd, _ in self.poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                self._read(fd)
        for fd in list(self.open_fds):
            self._close(fd)

    def _read(self, fd: int) -> None:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            self._close(fd)
        elif fd == self.out_fd:
            self.output_total += len(chunk)
            room = self.output_cap - len(self.output)
            if room > 0:
                self.output += chunk[:room]
        elif not self.report_overflow:
            self.report += chunk
            if len(self.report) > REPORT_LIMIT:
                self.report_overflow = True
                del self.report[:]

    def _close(self, fd: int) -> None:
        self.poller.unregister(fd)
        os.close(fd)
        self.open_fds.discard(fd)


# ------------------------------------------------------------------ processes and files


def _pidfd(pid: int):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _has_exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _decode_status(status: int):
    """(exit code, None) or (None, signal number)."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def _signal_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_namespace(child: int, give_up: float) -> int:
    """As PID 1 of the sandbox: kill and reap every other process; return the child's status."""
    child_status = None
    while time.monotonic() < give_up:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            break
        reaped = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped = True
            if pid == child:
                child_status = status
        if not reaped:
            time.sleep(0.0005)
    if child_status is None:
        _, child_status = os.waitpid(child, 0)
    return child_status


def _kill_matching(test, give_up: float, with_parent: bool) -> None:
    """Kill processes whose (uid, parent pid) satisfy ``test`` until none is left."""
    while time.monotonic() < give_up:
        found = [pid for pid, uid, parent in _processes(with_parent) if test(uid, parent)]
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap_ready()
        time.sleep(0.0005)


def _reap_ready() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _processes(with_parent: bool = True):
    """(pid, uid, parent pid or None) of every visible process."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            uid = entry.stat().st_uid
            parent = None
            if with_parent:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
            yield int(entry.name), uid, parent
        except (OSError, IndexError, ValueError):
            continue


def _count_own_processes() -> int:
    uid = os.getuid()
    return sum(1 for _, owner, _ in _processes(with_parent=False) if owner == uid)


def _make_scratch_root(drop_uid) -> str:
    import tempfile

    root = tempfile.mkdtemp(prefix="vstar-sandbox-")
    if drop_uid is not None:
        os.chmod(root, 0o711)
    return root


def _empty_directory(path: str) -> None:
    """Delete everything under ``path`` (the programs may have removed permissions)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
                _empty_directory(entry.path)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


if __name__ == "__main__":
    main(sys.argv)
