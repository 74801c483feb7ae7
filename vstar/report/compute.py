"""Compute accounting per method, from the stage summaries recorded in a run's markers."""

from __future__ import annotations

from pathlib import Path

from vstar.rundir import RunDir, read_summary


def _get(run: RunDir, stage: str, key: str) -> int:
    return int(read_summary(run.marker(stage)).get(key, 0) or 0)


def method_compute(run_dir: Path, metrics: dict) -> dict[str, dict[str, int]]:
    """tokens sampled / trained / verifier-forward per method, so methods can be compared at equal compute."""
    run = RunDir(run_dir)
    evaluation = metrics.get("compute", {})
    iterations = sorted(int(p.name.split("_")[1].split(".")[0]) for p in run.root.glob("markers/iter_*.samples.done.json"))
    sft_trained = _get(run, "sft", "train_tokens")
    star = {
        "sampled": sum(_get(run, f"iter_{t}.samples", "tokens_sampled") for t in iterations)
        + int(evaluation.get("tokens_sampled_final", 0)),
        "trained": sft_trained + sum(_get(run, f"iter_{t}.generator", "train_tokens") for t in iterations),
        "verifier_forward": 0,
    }
    table = {
        "SFT": {"sampled": int(evaluation.get("tokens_sampled_sft", 0)), "trained": sft_trained, "verifier_forward": 0},
        "STaR†": star,
        "V-STaR": {**star, "trained": star["trained"] + _get(run, "verifier", "train_tokens"),
                   "verifier_forward": int(evaluation.get("verifier_forward_tokens", 0))},
    }
    if run.marker("rft.samples").exists():
        table["RFT"] = {
            "sampled": _get(run, "rft.samples", "tokens_sampled") + int(evaluation.get("tokens_sampled_rft", 0)),
            "trained": sft_trained + _get(run, "rft.generator", "train_tokens"),
            "verifier_forward": 0,
        }
        if run.marker("verifier_1iter").exists():
            table["V-STaR[1 iter]"] = {**table["RFT"], "trained": table["RFT"]["trained"] + _get(run, "verifier_1iter", "train_tokens"),
                                       "verifier_forward": int(evaluation.get("verifier_forward_tokens", 0))}
    for kind, name in (("orm", "ORM"), ("genrm", "GenRM")):
        if run.marker(kind).exists():
            table[name] = {**star, "trained": star["trained"] + _get(run, kind, "train_tokens"),
                           "verifier_forward": int(evaluation.get("verifier_forward_tokens", 0))}
    for row in table.values():
        row["total"] = row["sampled"] + row["trained"] + row["verifier_forward"]
    return table
