"""metrics.json of an evaluation directory, computed from the files the earlier stages left
there, and recomputed in an existing run when the metrics code has changed.

Stage fingerprints record inputs and settings, not code versions: a run finished before a
change to the estimators keeps its old metrics.json on ``vstar run --resume``. Every
metrics.json records ``metrics_version`` (``tables.METRICS_VERSION``); ``refresh_metrics``
recomputes the ones that are older (or all of them, ``force``) from the saved candidates,
labels and scores, without sampling or scoring anything, and updates the stage markers so
that a resumed run still counts those stages as done. ``vstar report RUN_DIR`` calls it;
``vstar report --recompute RUN_DIR`` forces it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from vstar.config import Config, load_config, transfer_config
from vstar.errors import VstarError
from vstar.evaluation.tables import METRICS_VERSION, compute_metrics, merge_scores, rft_results
from vstar.rundir import RunDir, mark_done, read_jsonl, write_json

log = logging.getLogger(__name__)

#: curves that come from the RFT baseline's own evaluation directory (<eval dir>_rft)
RFT_CURVES = ("RFT pass@k", "V-STaR[1 iter] best-of-k")
EVAL_FILES = ("candidates.jsonl", "labels.jsonl", "scores.jsonl")


def _rft_results(config: Config, out_dir: Path) -> tuple[dict, dict] | None:
    """RFT / V-STaR[1 iter] curves and per-problem values from ``<out_dir>_rft``, if it is complete."""
    rft_dir = out_dir.with_name(out_dir.name + "_rft")
    if not config.baselines.rft or not all((rft_dir / name).exists() for name in EVAL_FILES):
        return None
    return rft_results(*(read_jsonl(rft_dir / name) for name in EVAL_FILES), config)


def write_metrics_json(config: Config, out_dir: Path, compute: dict, extra_curves: dict | None = None) -> dict:
    """Metrics from candidates, labels and scores in ``out_dir`` (plus classifier_scores.jsonl,
    if the baselines wrote one, and the RFT evaluation in ``<out_dir>_rft``) -> metrics.json;
    ``compute`` is recorded in it. ``extra_curves``: curves to include as given (the RFT ones
    are recomputed from their files when those exist)."""
    for name in EVAL_FILES:
        if not (out_dir / name).exists():
            raise VstarError(f"{out_dir / name}: missing; metrics are computed from it (run `vstar run --resume` first).")
    scores = read_jsonl(out_dir / "scores.jsonl")
    classifier_scores = out_dir / "classifier_scores.jsonl"
    if (config.baselines.orm or config.baselines.genrm) and classifier_scores.exists():
        scores = merge_scores(scores, read_jsonl(classifier_scores))
    extra_curves, extra_values = dict(extra_curves or {}), {}
    rft = _rft_results(config, out_dir)
    if rft is not None:
        extra_curves.update(rft[0])
        extra_values = rft[1]
    metrics = compute_metrics(
        read_jsonl(out_dir / "candidates.jsonl"), read_jsonl(out_dir / "labels.jsonl"), scores, config,
        extra_curves=extra_curves or None, extra_values=extra_values,
    )
    metrics["compute"] = {k: v for k, v in compute.items() if k != "seconds"}
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def evaluation_dirs(run: RunDir) -> list[tuple[Path, str, str | None]]:
    """(directory, marker name, transfer task or None) of each evaluation with a metrics.json."""
    found = [(run.eval, "eval", None)] if (run.eval / "metrics.json").exists() else []
    for path in sorted(run.root.glob("eval_*/metrics.json")):
        task = path.parent.name[len("eval_"):]
        if path.parent.name == "eval_val":  # the run's own task, on its validation split
            found.append((path.parent, "eval_val", None))
        elif not path.parent.name.endswith("_rft"):
            found.append((path.parent, f"transfer.{task}", task))
    return found


def _remark_outputs(run: RunDir, stage: str) -> None:
    """Record the outputs' new fingerprints in ``stage``'s marker (same key, inputs, summary),
    so that a resumed run does not redo the stage because metrics.json changed."""
    marker = run.marker(stage)
    if not marker.exists():
        return
    data = json.loads(marker.read_text())
    outputs = [run.root / name for name in data.get("outputs", {})]
    mark_done(marker, data["key"], data.get("summary"), outputs, data.get("inputs"))


def refresh_metrics(run_dir: str | Path, force: bool = False) -> list[Path]:
    """Recompute each metrics.json of the run whose ``metrics_version`` is older than the
    code's (every one with ``force``) from the files beside it; returns the rewritten files."""
    run = RunDir(run_dir)
    rewritten = []
    config = None
    for out_dir, stage, task in evaluation_dirs(run):
        old = json.loads((out_dir / "metrics.json").read_text())
        if not force and old.get("metrics_version", 1) >= METRICS_VERSION:
            continue
        if config is None:
            if not run.config.exists():
                raise VstarError(f"{run.root}: no config.yaml, so its metrics cannot be recomputed.")
            config = load_config(run.config)
        task_config = config
        if task is not None:  # as `vstar evaluate --task` and the pipeline's transfer stage build it
            task_config = transfer_config(config, task, config.eval.transfer.get(task) or {})
        kept = {name: curve for name, curve in old.get("curves", {}).items() if name in RFT_CURVES}
        log.info("recomputing %s (metrics version %s -> %s)", out_dir / "metrics.json",
                 old.get("metrics_version", 1), METRICS_VERSION)
        write_metrics_json(task_config, out_dir, old.get("compute", {}), kept)
        _remark_outputs(run, stage)
        rewritten.append(out_dir / "metrics.json")
    return rewritten
