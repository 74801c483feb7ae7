"""Crash safety: a run killed with SIGKILL at any point and resumed ends with the same results.

The kill test runs the real CLI in subprocesses (``python -m vstar.cli run``) on a very small
config, kills it at several points (found by watching the run directory), resumes it each
time, and compares the final files with an uninterrupted run's. On CPU with a fixed seed every
stage is deterministic, resumed or not, so the comparison is exact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from vstar.rundir import (
    append_jsonl,
    fingerprint,
    is_done,
    mark_done,
    path_fingerprint,
    read_jsonl,
    read_partial_jsonl,
    replace_dir,
    write_text,
)

REPO = Path(__file__).resolve().parents[1]
MICRO = REPO / "configs" / "micro.yaml"

#: a run of a few dozen seconds that still has several sampling chunks and checkpoints per stage
TINY = [
    "task.options={n_sft: 24, n_query: 16, n_test: 8, max_number: 9, max_value: 30, min_used: 2, max_used: 3}",
    "run.iterations=1", "run.seed=3",
    "generator.epochs=2", "generator.batch_size=8", "generator.max_steps=0",
    "verifier.epochs=1", "verifier.batch_size=8", "verifier.heldout_fraction=0.25", "verifier.max_pairs_per_problem=2",
    "sampling.k=4", "sampling.batch_size=16", "sampling.max_new_tokens=24",
    "eval.n_candidates=4", "eval.table_k=4", "eval.ks=[1, 2, 4]", "eval.bootstrap=50",
]
#: files that must be identical between a resumed run and an uninterrupted one
COMPARED = ["iter_1/samples.jsonl", "iter_1/labels.jsonl", "verifier/pairs.jsonl", "eval/candidates.jsonl",
            "eval/labels.jsonl", "eval/scores.jsonl", "eval/metrics.json"]
MODELS = ["sft", "iter_1/generator", "verifier"]


def _start(run_dir: Path, resume: bool) -> subprocess.Popen:
    args = ["run", "--resume", str(run_dir)] if resume else ["run", "--config", str(MICRO), "--run-dir", str(run_dir)]
    sets = [] if resume else [item for value in TINY for item in ("--set", value)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "vstar.cli", *args, *sets], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(process: subprocess.Popen, condition: Callable[[], bool], timeout: float = 240) -> bool:
    """SIGKILL ``process`` as soon as ``condition()`` holds; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    process.kill()
    raise AssertionError("kill point not reached in time")


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _complete_checkpoint(tmp_dir: Path) -> bool:
    return any((tmp_dir / "checkpoints").glob("checkpoint-*/.complete"))


def _model_files(run_dir: Path, name: str) -> bytes:
    return (run_dir / name / "model.safetensors").read_bytes()


def _finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=400)
    assert process.returncode == 0, err[-3000:]


def _kill_points(run_dir: Path) -> list[tuple[str, Callable[[], bool], str]]:
    """(name, condition, marker of the stage that must not be complete yet) in pipeline order."""
    markers = run_dir / "markers"
    return [
        # at least one chunk of 4 problems x k=4 samples (+ the header line) is on disk
        ("sampling", lambda: _lines(run_dir / "iter_1" / "samples.partial.jsonl") >= 17, "iter_1.samples"),
        ("between stages", lambda: (markers / "iter_1.labels.done.json").exists(), "iter_1.generator"),
        ("DPO training", lambda: _complete_checkpoint(run_dir / "verifier.tmp"), "verifier"),
        ("evaluation", lambda: _lines(run_dir / "eval" / "candidates_final.partial.jsonl") >= 17, "eval.candidates"),
    ]


def _run_with_kills(run_dir: Path, points) -> list[str]:
    """Start, kill at each point, resume each time; returns the points that were hit mid-stage."""
    hit = []
    process = _start(run_dir, resume=False)
    for name, condition, unfinished_marker in points:
        if _kill_when(process, condition):
            if not (run_dir / "markers" / f"{unfinished_marker}.done.json").exists():
                hit.append(name)
            process = _start(run_dir, resume=True)
    _finish(process)
    return hit


def _assert_same_results(reference: Path, resumed: Path) -> None:
    for name in COMPARED:
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    for name in MODELS:
        assert _model_files(resumed, name) == _model_files(reference, name), name
    leftovers = [p for p in resumed.rglob("*") if p.name.endswith((".tmp", ".partial.jsonl", ".stale"))]
    assert leftovers == []


def _reference_run(run_dir: Path) -> None:
    """The uninterrupted run, in this process."""
    from vstar.cli import main

    assert main(["run", "--config", str(MICRO), "--run-dir", str(run_dir),
                 *[item for value in TINY for item in ("--set", value)]]) == 0


def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path):
    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    reference = _start(reference_dir, resume=False)  # the uninterrupted run, alongside
    points = [p for p in _kill_points(resumed_dir) if p[0] != "between stages"]  # that one is in the slow test
    hit = _run_with_kills(resumed_dir, points)
    _finish(reference)
    assert hit == ["sampling", "DPO training", "evaluation"]
    _assert_same_results(reference_dir, resumed_dir)
    log = (resumed_dir / "run.log").read_text()
    assert "iteration 1: sampling: resuming" in log  # sampling went on from its partial file
    assert "resuming training from" in log  # DPO went on from its checkpoint
    assert "test candidates (final): resuming" in log
    _only_metrics_redone_after_a_metrics_setting_changes(reference_dir)


def _only_metrics_redone_after_a_metrics_setting_changes(run_dir: Path) -> None:
    from vstar.cli import main

    earlier = len((run_dir / "run.log").read_text())
    assert main(["run", "--resume", str(run_dir), "--set", "eval.bootstrap=20"]) == 0
    log = (run_dir / "run.log").read_text()[earlier:]  # this run's lines
    ran = [line.split("stage ")[1].split()[0] for line in log.splitlines() if line.endswith("running")]
    assert ran == ["eval"]
    assert "bootstrap: 20" in (run_dir / "config.yaml").read_text()


@pytest.mark.slow
def test_kill_at_many_points(tmp_path):
    """The same, with a kill in every stage, including the SFT trainers and scoring."""
    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    markers = resumed_dir / "markers"
    points = [
        ("base", lambda: (resumed_dir / ".base.tmp").exists(), "base"),
        ("SFT training", lambda: _complete_checkpoint(resumed_dir / "sft.tmp"), "sft"),
        *_kill_points(resumed_dir)[:2],
        ("generator training", lambda: _complete_checkpoint(resumed_dir / "iter_1" / "generator.tmp"),
         "iter_1.generator"),
        _kill_points(resumed_dir)[2],
        ("after DPO", lambda: (markers / "verifier.done.json").exists(), "eval.candidates"),
        _kill_points(resumed_dir)[3],
        ("scoring", lambda: (markers / "eval.labels.done.json").exists(), "eval.scores"),
    ]
    hit = _run_with_kills(resumed_dir, points)
    _reference_run(reference_dir)
    assert len(hit) >= 7, hit
    _assert_same_results(reference_dir, resumed_dir)


def test_second_process_is_refused_while_a_run_holds_the_directory(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from vstar.commands import run_lock\n"
         "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)", str(run_dir)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run([sys.executable, "-m", "vstar.cli", "run", "--config", str(MICRO), "--run-dir",
                                 str(run_dir)], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"run directory '{run_dir}' is in use by another vstar process (pid {holder.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # it wrote nothing
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------- the pieces, in-process


def test_partial_file_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "samples.partial.jsonl"
    append_jsonl(path, [{"a": 1}, {"a": 2}])
    with open(path, "a") as handle:
        handle.write('{"a": 3, "tor')
    assert read_partial_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'  # cut back, so appending goes on cleanly
    append_jsonl(path, [{"a": 3}])
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert read_partial_jsonl(tmp_path / "missing.jsonl") == []


def test_marker_is_void_when_an_output_changes(tmp_path):
    run_dir = tmp_path / "run"
    out = run_dir / "iter_1" / "samples.jsonl"
    write_text(out, "one\n")
    marker = run_dir / "markers" / "iter_1.samples.done.json"
    mark_done(marker, "k1", {"samples": 1}, [out], {"settings": "abc"})
    assert is_done(marker, "k1") and not is_done(marker, "k2")
    recorded = json.loads(marker.read_text())
    assert recorded["outputs"] == {"iter_1/samples.jsonl": path_fingerprint(out)}
    assert recorded["inputs"] == {"settings": "abc"}
    write_text(out, "two\n")
    assert not is_done(marker, "k1")  # the output was changed after the stage finished
    out.unlink()
    assert not is_done(marker, "k1")


def test_fingerprint_reads_files_inside_settings(tmp_path):
    data = tmp_path / "a.jsonl"
    data.write_text("x\n")
    before = fingerprint({"files": [data]})
    data.write_text("y\n")
    assert fingerprint({"files": [data]}) != before
    model = tmp_path / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(b"1")
    before = fingerprint(model)
    (model / "w.bin").write_bytes(b"2")
    assert fingerprint(model) != before


def test_replace_dir_swaps_in_the_new_folder(tmp_path):
    final, tmp = tmp_path / "sft", tmp_path / "sft.tmp"
    final.mkdir()
    (final / "old.txt").write_text("old")
    tmp.mkdir()
    (tmp / "new.txt").write_text("new")
    replace_dir(tmp, final)
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert not tmp.exists() and not (tmp_path / ".sft.stale").exists()


def test_write_text_keeps_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    import errno

    from vstar.errors import VstarError

    path = tmp_path / "labels.jsonl"
    write_text(path, "old\n")

    def no_space(fd, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(VstarError, match="labels.jsonl': no space left on device"):
        write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.jsonl"]  # no temp file left


def test_resumed_sampling_gives_the_same_records(tmp_path):
    """Sampling killed after some chunks (and with a torn line) resumes to the uninterrupted records."""
    from vstar import stages
    from vstar.config import load_config
    from vstar.models.tiny import TinyModelSpec, build_tiny_model
    from vstar.sampling.hf import TransformersSampler
    from vstar.tasks import get_task

    config = load_config(MICRO, ["sampling.batch_size=4", "sampling.max_new_tokens=8", "sampling.k=2"])
    model = build_tiny_model(tmp_path / "base", TinyModelSpec(32, 2, 2, 64, 128), seed=0)
    problems = get_task("embedded", config.task.options).problems("test")
    whole = stages.sample(config, str(model), problems, 2, 5, tmp_path / "a.jsonl", 1.0, "a", stop=())
    assert whole["samples"] == 2 * len(problems)

    partial = tmp_path / "b.partial.jsonl"
    calls = []
    original = TransformersSampler.generate

    def stop_after_two_chunks(self, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return original(self, *args, **kwargs)

    TransformersSampler.generate = stop_after_two_chunks
    try:
        with pytest.raises(KeyboardInterrupt):
            stages.sample(config, str(model), problems, 2, 5, tmp_path / "b.jsonl", 1.0, "b", stop=())
    finally:
        TransformersSampler.generate = original
    assert _lines(partial) == 1 + 2 * 4  # header + two chunks of 2 problems x 2 samples
    with open(partial, "a") as handle:
        handle.write('{"problem_id": "torn')
    stages.sample(config, str(model), problems, 2, 5, tmp_path / "b.jsonl", 1.0, "b", stop=())
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    assert not partial.exists()
