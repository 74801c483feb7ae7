"""Progress bars that suit where they are written: every progress bar in vstar comes from ``tqdm`` here.

On a terminal (or in a notebook) ``tqdm(...)`` is ``tqdm.auto.tqdm``: a live bar. On
anything else (CI, ``nohup``, a file, a pipe) it is ``LineProgress``: the same tqdm
object, but it writes plain lines, no carriage-return frames: one when the bar starts,
one each time another ``LINE_STEP`` of the total is done or ``LINE_INTERVAL_S`` seconds
have passed with progress, and a last one when it closes. A log then holds a dozen lines
per stage instead of thousands of frames.

Use it as tqdm: ``from vstar.progress import tqdm``.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm as TerminalBar  # noqa: N812 (the class under its role's name)

LINE_INTERVAL_S = 30.0
LINE_STEP = 0.1
LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
LINE_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit} [{elapsed}, {rate_fmt}{postfix}]"


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is a terminal, or we run in a notebook (whose widgets tqdm.auto draws)."""
    if "ipykernel" in sys.modules and stream is sys.stderr:
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


def tqdm(*args: Any, **kwargs: Any) -> TerminalBar:
    """A progress bar, tqdm's arguments: a live bar on a terminal, plain lines elsewhere."""
    stream = kwargs.get("file") or sys.stderr
    if is_terminal(stream):
        from tqdm.auto import tqdm as auto_bar

        return auto_bar(*args, **kwargs)
    return LineProgress(*args, **kwargs)


class LineProgress(TerminalBar):
    """tqdm for a stream that is not a terminal: whole lines, at a modest rate, never ``\\r``.

    ``line_interval`` (seconds) and ``line_step`` (share of the total) set the rate;
    without a total, only the interval applies.
    """

    def __init__(self, *args: Any, line_interval: float = LINE_INTERVAL_S, line_step: float = LINE_STEP,
                 **kwargs: Any):
        self._line_interval = line_interval
        self._line_step = line_step
        self._line_n: float | None = None  # progress at the last line written
        self._line_time = 0.0
        kwargs.setdefault("mininterval", 1.0)  # how often tqdm asks; display() decides whether to write
        kwargs["dynamic_ncols"] = False
        kwargs.pop("position", None)  # lines need no position: nested bars just interleave
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "" or not self._line_due():  # '' is tqdm clearing the bar: nothing to clear
            return False
        self._write_line()
        return True

    def close(self) -> None:
        if not self.disable and self._line_n is not None and self.n != self._line_n:
            self._write_line()  # the final count
        self.leave = False  # tqdm's close would add a newline or a '\r'; the lines are complete
        super().close()

    def _line_due(self) -> bool:
        if self._line_n is None:
            return True
        if self.n == self._line_n:
            return False
        if self._time() - self._line_time >= self._line_interval:
            return True
        if not self.total:
            return False
        step = max(self.total * self._line_step, 1e-12)
        return int(self.n // step) > int(self._line_n // step)

    def _write_line(self) -> None:
        line_format = self.bar_format or (LINE_FORMAT if self.total else LINE_FORMAT_NO_TOTAL)
        text = self.format_meter(**{**self.format_dict, "bar_format": line_format}).strip()
        self.fp.write(text + "\n")
        self.fp.flush()
        self._line_n = self.n
        self._line_time = self._time()
