"""An existing run's metrics.json, written by older metrics code, gets the current numbers
from `vstar report RUN_DIR` (recomputed from the saved files, nothing sampled or scored),
and a resumed run still counts its evaluation as done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vstar.cli import main
from vstar.rundir import RunDir, is_done, mark_done, write_jsonl

# two test problems, three candidates each, from G_T ("final") and G_SFT ("sft").
# p0: a1 is a correct solution, a2 a wrong chain reaching the right answer, b wrong.
LABELS = {
    "p0": [("a", True, True), ("a", False, True), ("b", False, False)],
    "p1": [("c", True, True), ("c", True, True), ("c", True, True)],
}
OLD_METRICS = {  # what the answer-credited vote wrote: maj@1 = (2/3 + 1) / 2
    "n_problems": 2, "n_candidates": 3, "ks": [1, 2, 3], "table": [],
    "curves": {"STaR† maj@k": {"1": {"mean": 5 / 6, "lo": 2 / 3, "hi": 1.0}}},
    "compute": {"tokens_sampled_final": 123},
}


def _write_run(root: Path) -> RunDir:
    run = RunDir(root)
    run.eval.mkdir(parents=True)
    run.config.write_text("eval: {n_candidates: 3, table_k: 2, bootstrap: 50}\n")
    candidates, labels, scores = [], [], []
    for source in ("final", "sft"):
        for pid, rows in LABELS.items():
            for index, (answer, correct, answer_correct) in enumerate(rows):
                candidates.append({"problem_id": pid, "sample_index": index, "source": source, "prompt": "",
                                   "completion": "", "finished": True, "num_tokens": 1})
                labels.append({"problem_id": pid, "sample_index": index, "correct": correct, "answer": answer,
                               "answer_correct": answer_correct})
                if source == "final":
                    scores.append({"problem_id": pid, "sample_index": index, "sft_logp_sum": -1.0 - index,
                                   "generator_logp_sum": -2.0, "verifier_logp_sum": -float(index), "tokens": 4})
    write_jsonl(run.eval / "candidates.jsonl", candidates)
    write_jsonl(run.eval / "labels.jsonl", labels)
    write_jsonl(run.eval / "scores.jsonl", scores)
    (run.eval / "metrics.json").write_text(json.dumps(OLD_METRICS))
    mark_done(run.marker("eval"), "eval-key", {"n_problems": 2}, [run.eval / "metrics.json"])
    return run


def test_report_recomputes_old_metrics_with_fair_votes_and_keeps_the_stage_done(tmp_path, capsys):
    run = _write_run(tmp_path / "old_run")
    assert main(["report", str(run.root)]) == 0
    assert "recomputed" in capsys.readouterr().err
    metrics = json.loads((run.eval / "metrics.json").read_text())
    assert metrics["metrics_version"] == 2 and metrics["compute"] == {"tokens_sampled_final": 123}
    maj, passed = metrics["curves"]["STaR† maj@k"], metrics["curves"]["STaR† pass@k"]
    # p0: maj@1 = 1/3 (the returned candidate), p1: 1 -> 2/3, which is pass@1
    assert maj["1"]["mean"] == pytest.approx(2 / 3) and passed["1"]["mean"] == pytest.approx(2 / 3)
    # p0 at k=2: {a1,a2} -> 1/2, {a1,b} -> 1/2, {a2,b} -> 0: 1/3; p1: 1 -> 2/3
    assert maj["2"]["mean"] == pytest.approx(2 / 3)
    # V-STaR ranks by -index: p0's best of {a1,a2}, {a1,b} is a1 (1), of {a2,b} a2 (0): 2/3; p1: 1
    vstar_best = metrics["per_problem"]["values"]["V-STaR best-of-k"]
    assert metrics["per_problem"]["problem_ids"] == ["p0", "p1"] and vstar_best == pytest.approx([2 / 3, 1.0])
    versus_vote = next(row for row in metrics["comparisons"] if row["b"] == "STaR† maj@2")
    assert versus_vote["diff"] == pytest.approx(((2 / 3 - 1 / 3) + 0) / 2) and versus_vote["n_problems"] == 2
    assert metrics["diagnostics"]["final"]["right_answer_wrong_solution"] == pytest.approx(1 / 6)
    assert is_done(run.marker("eval"), "eval-key")  # `vstar run --resume` will not redo the stage
    assert "Paired comparisons at k=2" in (run.root / "report.md").read_text()


def test_current_metrics_are_left_alone_unless_recompute_is_asked(tmp_path, capsys):
    run = _write_run(tmp_path / "run")
    assert main(["report", str(run.root)]) == 0
    capsys.readouterr()
    assert main(["report", str(run.root)]) == 0
    assert "recomputed" not in capsys.readouterr().err
    assert main(["report", "--recompute", str(run.root)]) == 0
    assert "recomputed" in capsys.readouterr().err


def test_a_run_that_cannot_be_recomputed_is_reported_as_it_is(tmp_path, capsys):
    run = _write_run(tmp_path / "run")
    (run.eval / "scores.jsonl").unlink()
    assert main(["report", str(run.root)]) == 0
    assert "left as they are" in capsys.readouterr().err
    assert "Older metrics code wrote this metrics.json" in (run.root / "report.md").read_text()
    assert main(["report", "--recompute", str(run.root)]) == 2  # asked for explicitly: an error
    assert "scores.jsonl: missing" in capsys.readouterr().err
