"""The evaluation stage: sample candidates on the test split, label, score, compute metrics.

Each step reads the previous steps' files in ``out_dir`` and writes its own, so the
pipeline runs them as separate resumable stages; ``vstar.pipeline.evaluate_run`` runs them
all, with the baselines' evaluation (``vstar.baselines``) between scores and metrics.
"""

from __future__ import annotations

from pathlib import Path

from vstar.config import Config
from vstar.evaluation.metrics_files import write_metrics_json
from vstar.rundir import RunDir, read_jsonl, write_jsonl
from vstar.stages import label, sample_records, scorer
from vstar.tasks import Task

#: candidate sources: the final generator G_T and, for the SFT baseline, G_SFT
SOURCES = ("final", "sft")


def sample_candidates(
    config: Config, run: RunDir, task: Task, final_generator: str, out_dir: Path, include_sft: bool = True
) -> dict:
    """N candidates per test problem from G_T and (``include_sft``) from G_SFT -> candidates.jsonl.

    Each source is sampled into ``candidates_<source>.partial.jsonl`` chunk by chunk, so a
    killed run resumes where it stopped; the partial files go once candidates.jsonl is written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = task.problems("test")
    records, summary, partials = [], {}, []
    sources = list(zip(SOURCES, (final_generator, str(run.sft))))[: 2 if include_sft else 1]
    for offset, (source, path) in enumerate(sources):
        partial = out_dir / f"candidates_{source}.partial.jsonl"
        part = sample_records(
            config, path, problems, config.eval.n_candidates, config.run.seed + 7919 * (offset + 1),
            partial, config.eval.temperature, desc=f"test candidates ({source})", stop=task.stop,
        )
        records += [{**r, "source": source} for r in part]
        summary[f"tokens_sampled_{source}"] = sum(r["num_tokens"] for r in part)
        partials.append(partial)
    write_jsonl(out_dir / "candidates.jsonl", records)
    for partial in partials:
        partial.unlink(missing_ok=True)
    return summary


def label_candidates(config: Config, task: Task, out_dir: Path) -> dict:
    """Check every candidate -> labels.jsonl (one line per line of candidates.jsonl)."""
    return label(config, task, task.problems("test"), out_dir / "candidates.jsonl", out_dir / "labels.jsonl")


def score_candidates(config: Config, run: RunDir, final_generator: str, verifier: str | None, out_dir: Path) -> dict:
    """Log-likelihood of every G_T candidate under V, G_SFT and G_T -> scores.jsonl."""
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


def write_metrics(config: Config, out_dir: Path, compute: dict, extra_curves: dict | None = None) -> dict:
    """Metrics from the evaluation's files -> metrics.json (``metrics_files.write_metrics_json``);
    ``compute`` is recorded in it."""
    return write_metrics_json(config, out_dir, compute, extra_curves)
