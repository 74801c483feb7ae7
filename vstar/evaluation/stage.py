"""The evaluation stage: sample candidates on the test split, label, score, compute metrics."""

from __future__ import annotations

from pathlib import Path

from vstar.config import Config
from vstar.rundir import RunDir, read_jsonl, write_json, write_jsonl
from vstar.tasks import Task

#: candidate sources: the final generator G_T and, for the SFT baseline, G_SFT
SOURCES = ("final", "sft")


def sample_candidates(config: Config, run: RunDir, task: Task, final_generator: str, out_dir: Path) -> dict:
    """N candidates per test problem from G_T and from G_SFT -> candidates.jsonl."""
    from vstar.stages import sample

    problems = task.problems("test")
    records = []
    summary = {}
    for offset, (source, path) in enumerate(zip(SOURCES, (final_generator, str(run.sft)))):
        tmp_file = out_dir / f".candidates_{source}.jsonl"
        part = sample(
            config, path, problems, config.eval.n_candidates, config.run.seed + 7919 * (offset + 1),
            tmp_file, config.eval.temperature, desc=f"test candidates ({source})",
        )
        records += [{**r, "source": source} for r in read_jsonl(tmp_file)]
        tmp_file.unlink()
        summary[f"tokens_sampled_{source}"] = part["tokens_sampled"]
    write_jsonl(out_dir / "candidates.jsonl", records)
    return summary


def score_candidates(config: Config, run: RunDir, final_generator: str, verifier: str | None, out_dir: Path) -> dict:
    """Log-likelihood of every G_T candidate under V, G_SFT and G_T -> scores.jsonl."""
    from vstar.scoring import scorer

    completion_logprobs = scorer(config)
    candidates = [c for c in read_jsonl(out_dir / "candidates.jsonl") if c["source"] == "final"]
    args = ([c["prompt"] for c in candidates], [c["completion"] for c in candidates], [c["finished"] for c in candidates])
    models = {"sft": str(run.sft), "generator": final_generator}
    if verifier:
        models["verifier"] = verifier
    columns = {}
    for name, path in models.items():
        sums, counts = completion_logprobs(path, *args, desc=f"scoring with {name}")
        columns[f"{name}_logp_sum"] = sums
        columns["tokens"] = counts
    records = []
    for i, c in enumerate(candidates):
        record = {"problem_id": c["problem_id"], "sample_index": c["sample_index"]}
        record.update({name: values[i] for name, values in columns.items()})
        records.append(record)
    write_jsonl(out_dir / "scores.jsonl", records)
    verifier_tokens = sum(columns["tokens"]) if verifier else 0
    return {"verifier_forward_tokens": verifier_tokens}


def evaluate_run(config: Config, run: RunDir, task: Task, final_generator: str, verifier: str | None, out_dir: Path) -> dict:
    """All of evaluation, writing candidates/labels/scores/metrics into ``out_dir``."""
    from vstar.evaluation.tables import compute_metrics
    from vstar.stages import label

    out_dir.mkdir(parents=True, exist_ok=True)
    summary = sample_candidates(config, run, task, final_generator, out_dir)
    summary.update(label(config, task, task.problems("test"), out_dir / "candidates.jsonl", out_dir / "labels.jsonl"))
    summary.update(score_candidates(config, run, final_generator, verifier, out_dir))
    metrics = compute_metrics(
        read_jsonl(out_dir / "candidates.jsonl"),
        read_jsonl(out_dir / "labels.jsonl"),
        read_jsonl(out_dir / "scores.jsonl"),
        config,
    )
    metrics["compute"] = summary
    write_json(out_dir / "metrics.json", metrics)
    return metrics
