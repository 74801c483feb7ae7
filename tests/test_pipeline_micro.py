"""A tiny end-to-end run through the real CLI: every stage, real models, real TRL trainers."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from vstar.cli import main
from vstar.rundir import read_jsonl

MICRO = Path(__file__).resolve().parents[1] / "configs" / "micro.yaml"


def _weights(model_dir: Path) -> dict:
    return load_file(str(model_dir / "model.safetensors"))


def _changed(a: dict, b: dict) -> bool:
    return any(not (a[name] == b[name]).all() for name in a)


# micro_run: the session's micro run (tests/conftest.py)


def test_all_stage_outputs_exist(micro_run):
    for path in ["config.yaml", "base/config.json", "sft/model.safetensors", "iter_1/samples.jsonl",
                 "iter_1/labels.jsonl", "iter_1/generator/model.safetensors", "verifier/model.safetensors",
                 "verifier/pairs.jsonl", "eval/candidates.jsonl", "eval/labels.jsonl", "eval/scores.jsonl",
                 "eval/metrics.json", "report.md", "accuracy_vs_k.png", "run.log"]:
        assert (micro_run / path).exists(), path


def test_samples_and_labels_line_up(micro_run):
    samples = read_jsonl(micro_run / "iter_1" / "samples.jsonl")
    labels = read_jsonl(micro_run / "iter_1" / "labels.jsonl")
    assert len(samples) == len(labels) == (48 + 32) * 4  # query = D_SFT problems + n_query, k = 4
    for s, l in zip(samples, labels):
        assert (s["problem_id"], s["sample_index"]) == (l["problem_id"], l["sample_index"])
        assert s["num_tokens"] >= 1 and isinstance(l["correct"], bool)


def test_weights_changed_from_their_initialisation(micro_run):
    base, sft = _weights(micro_run / "base"), _weights(micro_run / "sft")
    generator, verifier = _weights(micro_run / "iter_1" / "generator"), _weights(micro_run / "verifier")
    assert _changed(base, sft) and _changed(base, generator)
    assert _changed(sft, verifier)  # V starts from G_SFT and moves


def test_verifier_pairs_are_correct_vs_incorrect(micro_run):
    pairs = read_jsonl(micro_run / "verifier" / "pairs.jsonl")
    assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
    counts = {}
    for p in pairs:
        counts[p["problem_id"]] = counts.get(p["problem_id"], 0) + 1
    assert max(counts.values()) <= 8  # the default cap
    summary = json.loads((micro_run / "verifier" / "summary.json").read_text())
    assert summary["pairs"] + summary["heldout"]["pairs"] == len(pairs)


def test_metrics_are_sane(micro_run):
    metrics = json.loads((micro_run / "eval" / "metrics.json").read_text())
    assert metrics["n_problems"] == 8 and metrics["n_candidates"] == 4
    assert metrics["ks"] == [1, 2, 4]
    for curve in metrics["curves"].values():
        for point in curve.values():
            assert 0.0 <= point["lo"] <= point["mean"] <= point["hi"] <= 1.0
    pass_k = metrics["curves"]["STaR† pass@k"]
    assert pass_k["1"]["mean"] <= pass_k["2"]["mean"] <= pass_k["4"]["mean"]
    assert {"V-STaR best-of-k", "control: G_SFT likelihood best-of-k"} <= set(metrics["curves"])


def test_resume_on_a_finished_run_does_no_work(micro_run, capsys):
    before = {p: p.stat().st_mtime_ns for p in micro_run.rglob("*") if p.is_file() and p.name != "run.log"}
    assert main(["run", "--resume", str(micro_run)]) == 0
    after = {p: p.stat().st_mtime_ns for p in micro_run.rglob("*") if p.is_file() and p.name != "run.log"}
    rewritten = {".lock", "report.md", "report.html"}  # the report is redrawn at the end of every run
    changed = [p for p in before if after.get(p) != before[p] and p.name not in rewritten and p.suffix != ".png"]
    assert changed == []
    log = (micro_run / "run.log").read_text()
    assert log.count("already complete, skipped") >= 7


def test_a_second_run_into_the_same_directory_is_refused(micro_run, capsys):
    assert main(["run", "--config", str(MICRO), "--run-dir", str(micro_run)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_stage_commands_run_one_stage_on_files(micro_run, tmp_path, capsys):
    config = ["--config", str(MICRO)]
    samples, labels = tmp_path / "samples.jsonl", tmp_path / "labels.jsonl"
    assert main(["sample", *config, "--model", str(micro_run / "sft"), "--split", "test", "--n", "2", "--out", str(samples)]) == 0
    assert len(read_jsonl(samples)) == 8 * 2
    assert main(["label", *config, "--samples", str(samples), "--split", "test", "--out", str(labels)]) == 0
    assert [l["sample_index"] for l in read_jsonl(labels)] == [s["sample_index"] for s in read_jsonl(samples)]
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": "1 2 -> 3\n", "completion": "1+2=3\n"}) + "\n" for _ in range(8)))
    assert main(["train-generator", *config, "--base", str(micro_run / "base"), "--data", str(data), "--out", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g" / "model.safetensors").exists()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": "1 2 -> 3\n", "chosen": "1+2=3\n", "rejected": "1+2=4\n"}) + "\n" for _ in range(8)))
    assert main(["train-verifier", *config, "--sft", str(micro_run / "sft"), "--pairs", str(pairs), "--out", str(tmp_path / "v")]) == 0
    assert (tmp_path / "v" / "model.safetensors").exists()
    capsys.readouterr()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    assert main(["train-generator", *config, "--base", str(micro_run / "base"), "--data", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "line 1: field 'completion' missing" in capsys.readouterr().err


def test_evaluating_on_the_validation_split(micro_run, capsys):
    assert main(["evaluate", "--run", str(micro_run), "--split", "val"]) == 0
    metrics = json.loads((micro_run / "eval_val" / "metrics.json").read_text())
    assert metrics["n_problems"] == 8
    candidates = read_jsonl(micro_run / "eval_val" / "candidates.jsonl")
    assert {c["problem_id"].split("/")[1] for c in candidates} == {"val"}
    assert "best-of" in capsys.readouterr().out
