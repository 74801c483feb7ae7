"""The code sandbox: run model-written programs and their tests isolated, many in parallel.

``Sandbox`` (``harness.py``) keeps long-lived worker processes (``worker.py``, inside
bubblewrap) that fork one child per program; the child runs it with ``runner.py``, which
reports the values each ``assert`` checked (tests rewritten by ``assert_rewrite.py``, values
encoded by ``values.py``). ``client.py`` talks to one worker, ``cleanup.py`` wipes what a
program left behind. Verdicts are not decided here but in ``vstar.checkers.code``.

The worker's modules (worker, runner, values, cleanup) use the standard library only: the
harness reads them by path, compiles them and sends them to each worker, which runs them
outside the ``vstar`` package.
"""

from vstar.sandbox.assert_rewrite import compile_test
from vstar.sandbox.harness import SANDBOX_OPTION_KEYS, RunResult, Sandbox, SandboxOptions, sandbox_options
from vstar.sandbox.values import COMPARISONS, DecodeError, compare, decode

__all__ = [
    "COMPARISONS",
    "SANDBOX_OPTION_KEYS",
    "DecodeError",
    "RunResult",
    "Sandbox",
    "SandboxOptions",
    "compare",
    "compile_test",
    "decode",
    "sandbox_options",
]
