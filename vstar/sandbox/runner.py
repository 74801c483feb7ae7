"""Runs one program and its tests inside the sandbox child, and reports what happened.

Standard library only: the sandbox worker loads this file by path (not as part of
the ``vstar`` package) with a private copy of the builtins, so a program that
patches ``builtins`` cannot change how the runner behaves. The worker sets
``values`` to the loaded ``values`` module, calls ``install_guard``
and ``rehearse`` once, ``prepare(job)`` before each fork and ``run(prepared)`` in the child.

The report goes to a pipe that the worker reads and hands to the harness, as JSON lines
``["<tag>", record, record, ...]``: each write is one line (a fast run's whole report is
one), tagged with a BLAKE2b MAC of the rest of the line keyed with the job's random nonce
(``report_tag``). The records:

    ["check", test, kind, ...]   a value an assert checked (compared again outside)
    ["end", test, status, why]   a test returned: status ok / failed / error
    ["load", why]                the setup or the program did not compile or raised
    ["done"]                     the runner finished (the child exits right after)

The program can write to the pipe too (it runs in the same process), and a thread of it
can even land bytes inside a long line while the pipe is full; a line whose tag does not
match its bytes is dropped outside, records and all (the program only fails itself).
Keeping the nonce away from the program is what makes the report trustworthy, so:
  - the nonce and the pipe live only inside two generators (their frames are
    reachable only through ``gi_frame``, which the guard blocks);
  - tests arrive compiled (``vstar.sandbox.assert_rewrite``) and the checker they call
    is a *constant* of their code objects (a one-line ``assert a == b`` is checked by the
    runner itself, on the values of ``a`` and ``b``), not a name a program could rebind; they run
    with the builtins as they were before the program (a program's patches miss them);
  - an audit hook blocks the ways Python code reaches other frames or objects:
    ``sys._getframe``, ``tb_frame``/``gi_frame``/``cr_frame``/``ag_frame``,
    ``sys._current_frames``, ``settrace``/``setprofile``, ``gc`` introspection and
    ``gc.set_debug``, new audit hooks, every ``ctypes`` call, and files under ``/proc``;
  - signal handlers a program installs are called with ``frame=None``.
What remains possible is a program that defeats CPython itself (a memory-corruption
bug, native code): the OS sandbox still confines it, but it could fake verdicts.
"""

import builtins
import gc
import marshal
import os
import sys
import time
import types
from _blake2 import blake2b as _blake2b

values = None  # set by the worker to the loaded values module (values.py)

CHECK_PLACEHOLDER = "__vstar_check__"  # asserts become "__vstar_check__".__call__((...)) calls
_exit = os._exit
_write = os.write
_MAX_REASON = 300
_FLUSH_BYTES = 1 << 16
_FLUSH_SECONDS = 0.05
_monotonic = time.monotonic
REPORT_FD = 3  # the child's report pipe


def prepare(job: dict, report_fd: int = REPORT_FD) -> dict:
    """Everything that needs no program code to run, done in the worker before it forks.

    Compiles the setup and the program, loads the tests (marshalled by the harness) and
    makes the report channel, so each child starts right at the program. A compile error
    becomes the child's ``load`` record.
    """
    control, checker = _channels(report_fd, job["nonce"])
    prepared = {"control": control, "codes": [], "tests": [], "error": None}
    try:
        parts = [part for part in ("setup", "program") if job[part]]
        prepared["codes"] = [compile(job[part], f"<{part}>", "exec", dont_inherit=True) for part in parts]
        prepared["tests"] = [_load_test(blob, checker) for blob in job["tests"]]
    except BaseException as error:  # SyntaxError, MemoryError, or a test the harness wrote wrongly
        prepared["error"] = _describe(error)
    return prepared


def run(prepared: dict) -> None:
    """In the child: run the prepared program and tests, report, end the process; never returns."""
    status = 70
    try:
        _run(prepared)
        status = 0
    finally:
        _exit(status)


def _run(prepared: dict, arm: bool = True) -> None:
    control = prepared["control"]
    if prepared["error"] is not None:
        control(("load", prepared["error"]))
        control(("done",))
        return
    original_streams = (sys.stdout, sys.stderr)
    if arm:
        _guard[0]()  # arm the guard the worker installed before forking
    namespace = _program_namespace()
    try:
        for code in prepared["codes"]:
            exec(code, namespace)
    except BaseException as error:
        control(("load", _describe(error)))
        _flush(original_streams)
        control(("done",))
        return
    test_globals = dict(namespace)
    test_globals["__builtins__"] = _pristine_builtins[0]
    for index, code in enumerate(prepared["tests"]):
        control(("begin", index))
        control(_run_test(index, code, test_globals))
    _flush(original_streams)
    control(("done",))


def rehearse(job: dict, report_fd: int, times: int = 10) -> None:
    """Run ``job`` (a fixed, trusted one the harness sends with the worker's code) through the
    child's code path, here in the worker, ``times`` times, reporting to ``report_fd`` (e.g.
    /dev/null); call before the first fork.

    Each child then starts with that code warm: CPython 3.11 writes into a code object (its
    warm-up counter, then its inline caches) the first times it runs, and fills the type
    attribute cache on a miss, so cold code costs a child page copies. The guard stays
    disarmed; ``__main__`` is put back.
    """
    main = sys.modules.get("__main__")
    try:
        for _ in range(times):
            _run(prepare(job, report_fd), arm=False)
    finally:
        sys.modules["__main__"] = main


def _run_test(index: int, test, test_globals: dict) -> tuple:
    try:
        execute_test(test, test_globals)
    except AssertionError as error:
        return ("end", index, "failed", _describe(error))
    except BaseException as error:
        return ("end", index, "error", _describe(error))
    return ("end", index, "ok", "")


def _program_namespace() -> dict:
    """A fresh ``__main__`` for the program (the worker's own ``__main__`` becomes unreachable)."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module.__dict__


def _describe(error: BaseException) -> str:
    """``Type: first line of the message``, short; never raises."""
    try:
        name = type(error).__name__
        text = str(error).strip().splitlines()
        line = f"{name}: {text[0]}" if text else name
    except BaseException:
        line = "exception (its message could not be read)"
    return line[:_MAX_REASON]


def _flush(streams) -> None:
    for stream in streams:
        try:
            stream.flush()
        except BaseException:
            pass


# ------------------------------------------------------------------ the report channel


def report_tag(key: bytes, body: bytes) -> bytes:
    """The tag of one report line: a MAC of its records' JSON ``body`` keyed with the job's nonce."""
    return _blake2b(body, key=key, digest_size=16).hexdigest().encode()


def _channels(report_fd: int, nonce: str):
    """Two capabilities over the report pipe: ``control`` for the runner, ``checker`` for tests."""
    key = nonce.encode()
    tag = report_tag
    to_json = values.to_json
    current_test = [-1]
    pending = []  # records not yet written (each write wakes the worker: write few)
    pending_size = [0]
    last_flush = [_monotonic()]

    def write(body: str) -> None:
        """Queue one record; ``body`` is its JSON text without the brackets."""
        pending.append(body)
        pending_size[0] += len(body)
        if pending_size[0] > _FLUSH_BYTES:
            flush()

    def flush() -> None:
        """Write the queued records as one tagged line."""
        if not pending:
            return
        data = ("[" + "],[".join(pending) + "]").encode()
        del pending[:]
        pending_size[0] = 0
        last_flush[0] = _monotonic()
        data = b'["' + tag(key, data) + b'",' + data + b"]\n"
        while data:
            data = data[_write(report_fd, data):]

    def control_loop():
        while True:
            message = yield None
            try:
                if message[0] == "begin":
                    current_test[0] = message[1]
                    continue
                write(to_json(list(message))[1:-1])
                # a test's end goes out at once only in a slow run (a timeout then keeps the
                # tests that passed); a fast run sends its whole report with "done"
                if message[0] != "end" or _monotonic() - last_flush[0] > _FLUSH_SECONDS:
                    flush()
            except BaseException:
                pass  # a missing record fails the run outside; the generator must not die

    def checker_loop():
        answer = None
        while True:
            request = yield answer
            answer = _check(request, current_test[0], write)

    control, checker = control_loop(), checker_loop()
    next(control)
    next(checker)
    return control.send, checker.send


def _check(request: tuple, test: int, write) -> bool:
    """Encode what an assert checks, report it, and say whether it holds. Never raises."""
    head = '"check",' + int.__repr__(test) + ","
    try:
        kind = request[0]
        if kind == "cmp":
            op, left, right = request[1], request[2], request[3]
            if op in ("is", "is not") and not (_singleton(left) or _singleton(right)):
                holds = (left is right) == (op == "is")  # identity cannot be faked; checked here
                write(head + '"true",' + values.encode_json(holds))
                return holds
            encoded = values.encode_json(left) + "," + values.encode_json(right)
            holds = values.compare(op, left, right)  # both plain built-in values: no program code runs
            write(head + '"cmp",' + values.quote(op) + "," + encoded)
            return holds
        value = request[1]
        try:
            encoded = values.encode_json(value)
        except values.Opaque:
            if values.is_python_class(value):
                raise
            value = bool(value)  # a C type (a match object, an iterator): its truth is not the program's
            encoded = values.encode_json(value)
        holds = bool(value) == (kind == "true")
        write(head + values.quote(kind) + "," + encoded)
        return holds
    except values.Opaque as why:
        _safe_write(write, head + '"opaque",' + values.quote(str(why.args[0])))
    except BaseException as error:
        _safe_write(write, head + '"raised",' + values.quote(_describe(error)))
    return False


def _singleton(value) -> bool:
    return value is None or value is True or value is False or value is ...


def _safe_write(write, body: str) -> None:
    try:
        write(body)
    except BaseException:
        pass


def _load_test(blob: bytes, checker):
    """A test compiled by the harness (``assert_rewrite.compile_test``), wired to ``checker``:
    a code object to ``exec``, or (code of ``(a, b)``, label, checker) for ``assert a == b``."""
    test = marshal.loads(blob)
    if type(test) is tuple:
        return test[0], str(test[1]), checker
    return _swap_constant(test, checker)


def execute_test(test, test_globals: dict) -> None:
    """Run one loaded test; a failed check raises ``AssertionError`` (with the assert's source)."""
    if type(test) is tuple:
        code, label, checker = test
        left, right = eval(code, test_globals)
        if not checker(("cmp", "==", left, right)):
            raise AssertionError(label)
    else:
        exec(test, test_globals)


def _swap_constant(code, checker):
    consts = []
    for const in code.co_consts:
        if type(const) is str and const == CHECK_PLACEHOLDER:
            const = checker
        elif type(const) is types.CodeType:
            const = _swap_constant(const, checker)
        consts.append(const)
    return code.replace(co_consts=tuple(consts))


# ------------------------------------------------------------------ the guard


_FRAME_ATTRIBUTES = frozenset(["tb_frame", "gi_frame", "cr_frame", "ag_frame"])
_PATH_EVENTS = frozenset(["open", "os.listdir", "os.scandir", "os.chdir"])
_BLOCKED_EVENTS = {
    "sys._getframe": ValueError,  # ValueError: what namedtuple, enum and typing already tolerate
    "sys._current_frames": RuntimeError,
    "sys._current_exceptions": RuntimeError,
    "sys.settrace": RuntimeError,
    "sys.setprofile": RuntimeError,
    "sys.addaudithook": RuntimeError,
    "sys.monitoring.register_callback": RuntimeError,
    "gc.get_objects": RuntimeError,
    "gc.get_referrers": RuntimeError,
    "gc.get_referents": RuntimeError,
}


def _blocked(event: str, args: tuple) -> None:
    """Raise if ``event`` is one the guard refuses (see the module docstring)."""
    blocked = _BLOCKED_EVENTS.get(event)
    if blocked is not None:
        raise blocked(f"{event} is blocked by the vstar sandbox")
    if event == "object.__getattr__":
        if args[1] in _FRAME_ATTRIBUTES:
            raise AttributeError(f"{args[1]} is blocked by the vstar sandbox")
    elif event.startswith("ctypes."):
        raise RuntimeError(f"{event} is blocked by the vstar sandbox")
    elif event in _PATH_EVENTS and args and type(args[0]) in (str, bytes):
        path = args[0] if type(args[0]) is str else os.fsdecode(args[0])
        resolved = os.path.realpath(path)
        if resolved == "/proc" or resolved.startswith("/proc/"):
            raise PermissionError(f"{path}: /proc is blocked by the vstar sandbox")


_guard = [None]  # the function that arms the guard in a child; set by install_guard
_pristine_builtins = [None]  # the builtins as they were before any program: the tests' builtins


def install_guard() -> None:
    """Install the guard, disarmed, in the worker (once); each child arms it before the program.

    Also takes the snapshot of the builtins that the tests run with (once, not per child).

    An audit hook cannot be removed, and the flag that arms it lives only in the hook's
    closure, which no Python code can reach.
    """
    _pristine_builtins[0] = dict(builtins.__dict__)
    for name in [name for name in sys.modules if name.startswith(("ctypes", "_ctypes"))]:
        del sys.modules[name]  # unusable under the guard anyway
    armed = [False]

    def hook(event: str, args: tuple) -> None:
        if armed[0]:
            _blocked(event, args)

    def arm() -> None:
        armed[0] = True

    sys.addaudithook(hook)
    _wrap_signal_installer()
    _wrap_builtin_module_creation()
    gc.set_debug = _refuse("gc.set_debug")
    _guard[0] = arm


def _refuse(name: str):
    def refused(*args, **kwargs):
        raise RuntimeError(f"{name} is blocked by the vstar sandbox")

    return refused


def _hidden(function):
    """``function`` behind a generator: callers get results, never the function itself."""

    def loop():
        answer = None
        while True:
            args = yield answer
            try:
                answer = (True, function(*args))
            except BaseException as error:
                answer = (False, error)

    generator = loop()
    next(generator)
    send = generator.send

    def call(*args):
        ok, value = send(args)
        if not ok:
            raise value
        return value

    return call


def _wrap_signal_installer() -> None:
    import _signal

    raw_signal = _signal.signal

    def install(signalnum, handler):
        if callable(handler):
            original = handler

            def handler(signum, frame):  # the program's handler never sees a frame
                return original(signum, None)

        return raw_signal(signalnum, handler)

    _signal.signal = _hidden(install)


def _wrap_builtin_module_creation() -> None:
    """Refuse fresh copies of the modules patched above (``_imp.create_builtin(spec)``)."""
    import _imp

    raw_create = _imp.create_builtin
    refused = frozenset(["_signal", "gc", "_imp", "sys", "builtins"])

    def create(spec):
        name = spec.name
        if type(name) is not str or name in refused:
            raise ImportError(f"creating module {name!r} again is blocked by the vstar sandbox")
        return raw_create(types.SimpleNamespace(name=name, origin=getattr(spec, "origin", None)))

    _imp.create_builtin = _hidden(create)
