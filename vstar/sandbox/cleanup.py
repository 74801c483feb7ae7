"""Process and file clean-up for the sandbox worker (standard library only, loaded by path).

After each program the worker kills every process the program started and empties the
scratch directories, so that nothing of one program reaches the next.
"""

import os
import signal
import time


def pidfd(pid: int):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def has_exited(pid: int) -> bool:
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def decode_status(status: int):
    """(exit code, None) or (None, signal number)."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def signal_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def reap_exited(child: int, give_up: float) -> int:
    """As PID 1 of the sandbox, once ``child`` has exited: reap it, kill what it left, return
    its status. Orphans come to PID 1, so with no child left no process is left: the usual
    case costs no ``kill(-1)`` (which walks every process of the machine)."""
    _, status = os.waitpid(child, 0)
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return status
    kill_namespace(None, give_up)
    return status


def kill_namespace(child, give_up: float):
    """As PID 1 of the sandbox: kill and reap every other process; return the status of
    ``child`` (a pid, or None if it is reaped already)."""
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
    if child_status is None and child is not None:
        _, child_status = os.waitpid(child, 0)
    return child_status


def kill_matching(test, give_up: float, with_parent: bool) -> None:
    """Kill processes whose (uid, parent pid) satisfy ``test`` until none is left."""
    while time.monotonic() < give_up:
        found = [pid for pid, uid, parent in processes(with_parent) if test(uid, parent)]
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        reap_ready()
        time.sleep(0.0005)


def reap_ready() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def processes(with_parent: bool = True):
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


def count_own_processes() -> int:
    uid = os.getuid()
    return sum(1 for _, owner, _ in processes(with_parent=False) if owner == uid)


def make_scratch_root(drop_uid) -> str:
    import tempfile

    root = tempfile.mkdtemp(prefix="vstar-sandbox-")
    if drop_uid is not None:
        os.chmod(root, 0o711)
    return root


def directory_state(path: str) -> tuple:
    """What changes when anything is created or removed in a tmpfs directory, or its mode
    changes: tmpfs counts each entry in the directory's size."""
    status = os.stat(path)
    return status.st_size, status.st_mode, status.st_uid


def tracks_entries(path: str) -> bool:
    """Whether ``directory_state(path)`` changes when a file appears in ``path`` (tmpfs)."""
    before = directory_state(path)
    probe = os.path.join(path, ".vstar-probe")
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        return directory_state(path) != before
    finally:
        os.unlink(probe)


def empty_directory(path: str) -> None:
    """Delete everything under ``path``, however deep, whatever permissions a program left."""
    _open_up(path)
    stack = [(path, False)]
    while stack:
        current, emptied = stack.pop()
        if emptied:
            if current != path:
                remove_directory(current)
            continue
        stack.append((current, True))
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _open_up(entry.path)
                stack.append((entry.path, False))
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass


def _open_up(path: str) -> None:
    """Make a directory listable and writable again (works where this process owns it)."""
    try:
        os.chmod(path, 0o1777 if path in ("/tmp", "/dev/shm") else 0o700)
    except OSError:
        pass


def remove_directory(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
