"""Progress output: live bars on a terminal, a few plain lines anywhere else."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from tqdm.std import tqdm as std_tqdm

from vstar.progress import LineProgress, tqdm

REPO = Path(__file__).resolve().parents[1]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_many_steps_to_a_non_terminal_write_few_whole_lines():
    stream = io.StringIO()
    with tqdm(total=100_000, desc="sampling", unit="seq", leave=False, file=stream) as bar:
        for _ in range(100_000):
            bar.update(1)
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 12, lines
    assert lines[0].startswith("sampling:   0% 0/100000")
    assert lines[-1].startswith("sampling: 100% 100000/100000")
    assert text.endswith("\n")


def test_a_line_each_tenth_of_the_total_and_the_postfix():
    stream = io.StringIO()
    bar = tqdm(total=50, desc="train", unit="step", file=stream, mininterval=0)
    for step in range(50):
        bar.update(1)
        bar.set_postfix(loss=f"{step / 10:.3f}")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == [f"{percent}%" for percent in range(0, 101, 10)]
    assert lines[-1].endswith("loss=4.800]")  # written by the last update, before its postfix


def test_a_line_after_the_interval_even_between_tenths():
    stream = io.StringIO()
    bar = LineProgress(total=1000, desc="slow", file=stream, mininterval=0, line_interval=30.0)
    clock = [bar._time()]
    bar._time = lambda: clock[0]
    for _ in range(5):  # 0.5% of the total, 31 s apart: each step gets its line
        clock[0] += 31.0
        bar.update(1)
    bar.close()
    assert len(stream.getvalue().splitlines()) == 6  # the start line and five steps


def test_without_a_total_and_iterating():
    stream = io.StringIO()
    assert list(tqdm(iter(range(5)), desc="scoring", unit="batch", file=stream)) == list(range(5))
    assert stream.getvalue().splitlines() == [
        line for line in stream.getvalue().splitlines() if line.startswith("scoring: ")
    ]
    assert stream.getvalue().splitlines()[-1].startswith("scoring: 5 batch")


def test_a_terminal_gets_tqdms_live_bar():
    stream = FakeTerminal()
    bar = tqdm(total=10, desc="live", file=stream, mininterval=0)
    assert isinstance(bar, std_tqdm) and not isinstance(bar, LineProgress)
    for _ in range(10):
        bar.update(1)
    bar.close()
    assert "\r" in stream.getvalue()


def test_disabled_bar_writes_nothing():
    stream = io.StringIO()
    assert list(tqdm(range(3), file=stream, disable=True)) == [0, 1, 2]
    assert stream.getvalue() == ""


def test_vstar_uses_no_tqdm_but_its_own():
    """Every progress bar in the package goes through vstar.progress."""
    result = subprocess.run(["grep", "-rn", "--include=*.py", "from tqdm", str(REPO / "vstar")],
                            capture_output=True, text=True)
    users = [line for line in result.stdout.splitlines() if "vstar/progress.py" not in line]
    assert not users, users


def test_a_stage_bar_in_a_child_with_stderr_to_a_file(tmp_path):
    log = tmp_path / "stderr.log"
    code = ("from vstar.progress import tqdm\n"
            "for _ in tqdm(range(20000), desc='stage', unit='seq', leave=False): pass\n")
    with log.open("w") as stderr:
        subprocess.run([sys.executable, "-c", code], stderr=stderr, check=True, cwd=REPO)
    text = log.read_text()
    assert "\r" not in text and len(text.splitlines()) <= 12 and "stage: 100% 20000/20000" in text
