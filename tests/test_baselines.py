"""Every method on one micro run: RFT, V-STaR[1 iter], ORM, GenRM next to V-STaR, and the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file

from vstar.cli import main
from vstar.rundir import read_jsonl

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "micro_all.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "micro_all"
    assert main(["run", "--config", str(CONFIG), "--run-dir", str(path)]) == 0
    return path


def _summary(path: Path) -> dict:
    return json.loads((path / "train_summary.json").read_text())


@pytest.mark.parametrize("model_dir", ["verifier", "verifier_1iter", "orm", "genrm", "rft/generator"])
def test_each_trained_model_moved_and_its_loss_fell(run_dir, model_dir):
    summary = _summary(run_dir / model_dir)
    assert summary["steps"] >= 1
    assert summary["last_loss"] < summary["first_loss"]
    start = load_file(str(run_dir / ("base" if model_dir.startswith("rft") else "sft") / "model.safetensors"))
    trained = load_file(str(run_dir / model_dir / "model.safetensors"))
    shared = [name for name in trained if name in start]  # the ORM adds a score head
    assert shared and any(not (trained[n] == start[n]).all() for n in shared)


def test_rft_uses_iterations_times_k_samples_from_g_sft(run_dir):
    samples = read_jsonl(run_dir / "rft" / "samples.jsonl")
    first = read_jsonl(run_dir / "iter_1" / "samples.jsonl")
    per_problem = {}
    for s in samples:
        per_problem[s["problem_id"]] = per_problem.get(s["problem_id"], 0) + 1
    assert set(per_problem.values()) == {2 * 2}  # iterations x k
    assert samples[: len(first)] == first  # iteration 1's samples are shared, not redrawn


def test_metrics_hold_every_method(run_dir):
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    methods = {row["method"] for row in metrics["table"]}
    assert {"SFT", "STaR†", "RFT", "V-STaR", "V-STaR[1 iter]", "ORM", "GenRM",
            "control: G_SFT likelihood", "control: generator mean log-prob"} <= methods
    for row in metrics["table"]:
        assert 0 <= row["lo"] <= row["mean"] <= row["hi"] <= 1
    # V-STaR against each baseline, paired on the same 8 test problems
    compared = {row["b"] for row in metrics["comparisons"] if row["a"] == "V-STaR best-of-4"}
    assert {"ORM best-of-4", "GenRM best-of-4", "V-STaR[1 iter] best-of-4", "control: G_SFT likelihood best-of-4"} <= compared
    assert {row["n_problems"] for row in metrics["comparisons"]} == {8}


def test_report_is_self_contained_html(run_dir):
    report = run_dir / "report.html"
    text = report.read_text()
    assert text.count("data:image/png;base64,") >= 4  # curves, iterations, compute, score histograms
    assert "src=\"http" not in text and "href=\"http" not in text
    for heading in ("Per-iteration monitors", "Compute per method", "held-out pairs"):
        assert heading in text


@pytest.mark.skipif(shutil.which("chromium") is None and not os.environ.get("VSTAR_REQUIRE_CHROMIUM"),
                    reason="chromium not installed (make test installs it; CI requires it)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3000", f"--screenshot={shot}",
         (run_dir / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    assert shot.stat().st_size > 20_000
