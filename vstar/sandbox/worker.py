"""The sandbox worker: a long-lived process that forks one fresh child per program.

Standard library only. The harness (``harness.py``) starts it, inside bubblewrap or
as a plain process (``--mode rlimits``), with

    python -s -S -B -c BOOT <size of its code> --mode bwrap|rlimits [--drop-uid N] [--cpu N]

sends it its code and that of its sibling modules, compiled (BOOT reads and runs it),
and then talks to it over stdin/stdout: it answers ``READY`` once started, then reads
jobs (4-byte big-endian length, then the marshalled job) and answers each. For
each job the worker compiles the program (``runner.prepare``), forks a child
that sets its limits and runs ``runner.run``, watches the child's output
pipe, report pipe and exit, kills it at the wall-clock deadline, then kills every
process the program left behind and wipes the scratch directories, so nothing of one
program survives into the next. Reply: a fixed ``REPLY`` header, then the raw report
bytes, then the first bytes of the program's output.

Cost per program is mostly the fork and the pages the child then writes (each is
copied): work that needs no program code (compiling, the guard, the builtins
snapshot, the watcher) is done in the worker, before forking.

Inside bubblewrap the worker is PID 1 of its own PID namespace (``--as-pid-1``):
programs cannot kill it, orphans are re-parented to it, and ``kill(-1)`` reaches
every other process in the sandbox.
"""

import gc
import marshal
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
    "math", "operator", "re", "string", "typing", "binascii", "marshal",
)
cleanup = None  # the loaded cleanup module (set by main)
READY = b"vstar sandbox worker: ready\n"
# exit code, signal (each -1 where there is none), elapsed seconds, timed out, report overflow,
# output bytes in all, then the sizes of the report and of the kept output, which follow it
REPLY = struct.Struct(">iid??QII")
CHUNK = 1 << 16
REPORT_LIMIT = 64 << 20  # bytes of report before the child is stopped
KILL_GRACE = 2.0  # seconds to wait for pipes to close after everything is killed
SCRATCH_DIRS = ("/tmp", "/dev/shm")  # bwrap: the sandbox's own tmpfs directories, emptied after each program
CHILD_LIMITS = (  # the limits each child sets (see Worker._set_limits)
    resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_FSIZE, resource.RLIMIT_CORE, resource.RLIMIT_NPROC,
)


def main(argv: list) -> None:
    os.environ.pop("LD_BIND_NOW", None)  # set by the harness for this process only (see client.py)
    mode = argv[argv.index("--mode") + 1]
    drop_uid = int(argv[argv.index("--drop-uid") + 1]) if "--drop-uid" in argv else None
    if "--cpu" in argv:  # this worker and its programs stay on one CPU (warm caches, no migrations)
        try:
            os.sched_setaffinity(0, {int(argv[argv.index("--cpu") + 1])})
        except OSError:
            pass  # the CPU is no longer ours: run unpinned
    if mode == "bwrap" and drop_uid is not None:
        for path in SCRATCH_DIRS:
            os.chmod(path, 0o1777)  # the tmpfs belongs to root; the sandbox user must write it
        _become(drop_uid)
        drop_uid = None  # already dropped: the children inherit it
    _prctl(1 if mode == "bwrap" else 36, signal.SIGKILL if mode == "bwrap" else 1)
    for name in PRELOAD:
        __import__(name)
    runner = _load_runner()
    global cleanup
    cleanup = _load_module("cleanup")
    channel_in, channel_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    worker = Worker(mode, drop_uid, runner)
    runner.rehearse(__boot__["rehearsal"], null)  # noqa: F821 - the children's code path, warmed once
    worker.rehearse_limits()
    gc.collect()
    gc.freeze()  # the children's garbage collector then leaves the shared pages alone (fewer copies)
    _write_all(channel_out, READY)
    try:
        while True:
            job = _receive(channel_in)
            if job is None:
                break
            _write_all(channel_out, worker.run(job))
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
    """Load a sibling module, from the code the harness sent, with its own copy of the
    builtins (a program's patches miss it)."""
    import builtins

    code = __boot__["modules"][name]  # noqa: F821 - set by the harness's BOOT (see harness.py)
    module = types.ModuleType("_vstar_sandbox_" + name)
    module.__dict__["__builtins__"] = dict(builtins.__dict__)
    module.__dict__["__file__"] = code.co_filename
    exec(code, module.__dict__)
    return module


def _load_runner() -> types.ModuleType:
    runner = _load_module("runner")
    runner.values = _load_module("values")
    runner.install_guard()
    return runner


# ------------------------------------------------------------------ framing


def _write_all(fd: int, data: bytes) -> None:
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
    return None if body is None else marshal.loads(body)


# ------------------------------------------------------------------ running one job


class Worker:
    """Runs jobs one at a time: fork, watch, kill what is left, clean up."""

    def __init__(self, mode: str, drop_uid, runner: types.ModuleType):
        self.mode = mode
        self.drop_uid = drop_uid  # rlimits mode as root: each child runs as this uid
        self.runner = runner
        self.scratch_root = None if mode == "bwrap" else cleanup.make_scratch_root(drop_uid)
        self.process_limit_base = 0 if mode == "bwrap" or drop_uid is not None else cleanup.count_own_processes()
        self.null_fd = os.open(os.devnull, os.O_RDONLY)  # the children's stdin
        self.runs = 0
        self.compile_memory = None  # the soft address-space limit set for compiling
        os.umask(0o077)
        # bwrap: the tmpfs directories' state when empty; one that still shows it needs no emptying
        self.empty_state = {}
        if mode == "bwrap":
            for path in SCRATCH_DIRS:
                if cleanup.tracks_entries(path):
                    self.empty_state[path] = cleanup.directory_state(path)

    def run(self, job: dict) -> bytes:
        """Run one job; the reply (see ``REPLY``)."""
        limits = job["limits"]
        if limits["memory"] != self.compile_memory:  # compiling a program
            _lower_limit(resource.RLIMIT_AS, int(limits["memory"]), soft_only=True)
            self.compile_memory = limits["memory"]
        prepared = self.runner.prepare(job)
        workdir = self._workdir()
        out_r, out_w = os.pipe()
        report_r, report_w = os.pipe()
        # Set up before forking: while the child lives, every page the worker writes is copied.
        watch = Watch(out_r, report_r, int(job["limits"]["output_cap"]))
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self._child(prepared, job["limits"], workdir, out_w, report_w)
        os.close(out_w)
        os.close(report_w)
        watch.follow(pid)
        watch.wait(started + float(job["limits"]["timeout"]))
        exit_code, signal_number = cleanup.decode_status(self._kill_leftovers(pid, watch.exited))
        watch.drain(time.monotonic() + KILL_GRACE)
        self._clean(workdir)
        report, output = watch.report, watch.output
        header = REPLY.pack(
            -1 if exit_code is None else exit_code,
            -1 if signal_number is None else signal_number,
            time.monotonic() - started,
            watch.timed_out,
            watch.report_overflow,
            watch.output_total,
            len(report),
            len(output),
        )
        return header + report + output

    def _child(self, prepared: dict, limits: dict, workdir: str, out_w: int, report_w: int) -> None:
        try:
            if self.mode != "bwrap":  # in bwrap, kill(-1) needs no process group; cwd is /tmp already
                os.setsid()
                os.chdir(workdir)
            os.dup2(self.null_fd, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.dup2(report_w, self.runner.REPORT_FD)
            os.closerange(4, 4096)
            if self.drop_uid is not None:
                _become(self.drop_uid)
            self._set_limits(limits)
            self.runner.run(prepared)
        finally:
            os._exit(70)

    def _set_limits(self, limits: dict) -> None:
        cpu = int(float(limits["timeout"])) + 1
        _lower_limit(resource.RLIMIT_AS, int(limits["memory"]))
        _lower_limit(resource.RLIMIT_CPU, cpu, cpu + 1)  # SIGXCPU, then SIGKILL a second later
        _lower_limit(resource.RLIMIT_FSIZE, int(limits["file_size"]))
        _lower_limit(resource.RLIMIT_CORE, 0)
        _lower_limit(resource.RLIMIT_NPROC, self.process_limit_base + int(limits["processes"]))

    def rehearse_limits(self, times: int = 10) -> None:
        """Warm ``_lower_limit`` as ``runner.rehearse`` warms the runner: set each limit the
        children set to its current value."""
        for _ in range(times):
            for which in CHILD_LIMITS:
                _lower_limit(which, *resource.getrlimit(which))

    def _workdir(self) -> str:
        if self.scratch_root is None:
            return "/tmp"
        self.runs += 1
        path = os.path.join(self.scratch_root, f"run{self.runs}")  # a fresh name even if a removal failed
        os.mkdir(path, 0o700)
        if self.drop_uid is not None:
            os.chown(path, self.drop_uid, self.drop_uid)
        return path

    def _kill_leftovers(self, pid: int, exited: bool) -> int:
        """Kill the child and everything it started; return the child's wait status."""
        give_up = time.monotonic() + KILL_GRACE
        if self.mode == "bwrap":
            return cleanup.reap_exited(pid, give_up) if exited else cleanup.kill_namespace(pid, give_up)
        cleanup.signal_group(pid)  # the child leads its own session: a program cannot leave this group
        _, status = os.waitpid(pid, 0)
        if self.drop_uid is not None:
            cleanup.kill_matching(lambda uid, parent: uid == self.drop_uid, give_up, with_parent=False)
        else:  # orphans come back to this worker (a child subreaper)
            me = os.getpid()
            cleanup.kill_matching(lambda uid, parent: parent == me, give_up, with_parent=True)
        return status

    def _clean(self, workdir: str) -> None:
        if self.mode == "bwrap":
            for path in SCRATCH_DIRS:
                if path not in self.empty_state or cleanup.directory_state(path) != self.empty_state[path]:
                    cleanup.empty_directory(path)
        else:
            cleanup.empty_directory(workdir)
            cleanup.remove_directory(workdir)

    def close(self) -> None:
        if self.scratch_root is not None:
            cleanup.empty_directory(self.scratch_root)
            cleanup.remove_directory(self.scratch_root)


def _lower_limit(which: int, soft: int, hard=None, soft_only: bool = False) -> None:
    """Set a limit, never above the current hard limit (raising it needs privileges)."""
    _, current_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, current_hard if soft_only else hard))


class Watch:
    """Reads a child's output and report while waiting for it to exit or its deadline."""

    def __init__(self, out_fd: int, report_fd: int, output_cap: int):
        self.pid = 0
        self.pidfd = None
        self.output = bytearray()
        self.output_cap = output_cap
        self.output_total = 0
        self.report = bytearray()
        self.timed_out = False
        self.exited = False  # wait() saw the child exit
        self.report_overflow = False
        self.poller = select.poll()
        self.open_fds = {out_fd, report_fd}
        self.out_fd, self.report_fd = out_fd, report_fd
        for fd in self.open_fds:
            self.poller.register(fd, select.POLLIN)

    def follow(self, pid: int) -> None:
        """Watch the child ``pid`` for its exit too (a pidfd where the kernel has them)."""
        self.pid = pid
        self.pidfd = cleanup.pidfd(pid)
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
            exited = any(fd == self.pidfd for fd, _ in events) or (self.pidfd is None and cleanup.has_exited(self.pid))
            for fd, _ in events:
                if fd != self.pidfd:
                    self._read(fd)
            if exited:
                self.exited = True
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


if __name__ == "__main__":
    main(sys.argv)
