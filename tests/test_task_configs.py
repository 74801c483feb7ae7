"""Each task's config in configs/ runs through `vstar run` (shrunk further so the suite stays fast):
GSM8K (+ transfer to MATH-500), MATH-500, MBPP, MBPP -> HumanEval and the user's own JSONL file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from vstar.cli import main
from vstar.rundir import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SMALL = ["run.iterations=1", "sampling.k=2", "sampling.max_new_tokens=48", "eval.n_candidates=2",
         "eval.table_k=2", "eval.bootstrap=20", "generator.epochs=1", "verifier.epochs=1",
         "generator.batch_size=4", "verifier.batch_size=4"]
COUNTS = ["task.options.n_sft=8", "task.options.n_query=4", "task.options.n_test=3"]

# config -> (extra overrides, test problems in the main evaluation, {transfer task: its test problems})
CASES = {
    "gsm8k": (COUNTS + ["eval.transfer.math500.n_test=2"], 3, {"math500": 2}),
    "math500": (COUNTS, 3, {}),
    "mbpp": (COUNTS, 3, {}),
    "humaneval": (COUNTS + ["eval.transfer.humaneval.n_test=2"], 3, {"humaneval": 2}),
    "jsonl_example": (COUNTS, 3, {}),
}


def _changed(a: Path, b: Path) -> bool:
    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return any(not (first[name] == second[name]).all() for name in first)


def _check_eval(folder: Path, expected_problems: int) -> None:
    metrics = json.loads((folder / "metrics.json").read_text())
    candidates, labels = read_jsonl(folder / "candidates.jsonl"), read_jsonl(folder / "labels.jsonl")
    assert len(candidates) == len(labels) == metrics["n_problems"] * 2 * 2  # N = 2, from G_T and G_SFT
    assert [(c["problem_id"], c["sample_index"]) for c in candidates] == \
        [(l["problem_id"], l["sample_index"]) for l in labels]
    assert metrics["n_problems"] == expected_problems
    rows = {(r["method"], r["metric"]): r for r in metrics["table"]}
    for key in [("SFT", "pass@1"), ("STaR†", "pass@1"), ("V-STaR", "best-of-2")]:
        assert 0.0 <= rows[key]["mean"] <= 1.0, key


@pytest.mark.parametrize("name", sorted(CASES))
def test_task_config_runs_end_to_end(name, tmp_path, monkeypatch):
    if name != "jsonl_example" and not SHARED.exists():
        pytest.skip("../shared/data is not beside the repository")
    monkeypatch.chdir(ROOT)  # the configs' data paths are relative to the repository root
    extra, n_test, transfers = CASES[name]
    run_dir = tmp_path / name
    argv = ["run", "--config", f"configs/{name}.yaml", "--run-dir", str(run_dir)]
    for override in SMALL + extra:
        argv += ["--set", override]
    assert main(argv) == 0
    assert _changed(run_dir / "base", run_dir / "sft")
    assert _changed(run_dir / "sft", run_dir / "verifier")
    pairs = read_jsonl(run_dir / "verifier" / "pairs.jsonl")
    assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
    _check_eval(run_dir / "eval", n_test)
    for task, count in transfers.items():
        _check_eval(run_dir / f"eval_{task}", count)
        assert f"Transfer to {task}" in (run_dir / "report.md").read_text()
