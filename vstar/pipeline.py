"""Algorithm 1 of the V-STaR paper, as vstar runs it, top to bottom.

    G_SFT <- SFT(G_base, D_SFT)                          # G_0
    for t in 1..T:
        S_t  <- sample(G_{t-1}, D_query, k); label S_t
        D_GEN <- D_SFT + distinct correct samples of S_1..S_t
        G_t  <- SFT(G_base, D_GEN)                       # always from the base model
    D_VER <- D_SFT (correct) + S_1..S_T (labeled)
    V     <- DPO(init = G_SFT, reference = G_SFT, pairs from D_VER)
    test: N candidates per problem from G_T (and G_SFT), scored by V -> metrics

Every stage writes into the run directory and records a marker with the
fingerprint of its inputs; a resumed run skips stages whose marker matches.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import time
from typing import Callable

from vstar import __version__
from vstar.config import Config, dump_yaml
from vstar.errors import VstarError
from vstar.rundir import RunDir, fingerprint, is_done, mark_done, marker_key, read_summary, write_text
from vstar.tasks import get_task

log = logging.getLogger("vstar")


def _stage(run: RunDir, name: str, key: str, work: Callable[[], dict]) -> dict:
    """Run ``work`` unless the stage's marker already records ``key``; then mark it done."""
    marker = run.marker(name)
    if is_done(marker, key):
        log.info("stage %-18s already complete, skipped", name)
        return read_summary(marker)
    log.info("stage %-18s running", name)
    started = time.time()
    summary = work() or {}
    summary["seconds"] = round(time.time() - started, 1)
    mark_done(marker, key, summary)
    log.info("stage %-18s done in %.1fs", name, summary["seconds"])
    return summary


def _settings(config: Config, *sections: str) -> dict:
    return {name: dataclasses.asdict(getattr(config, name)) for name in sections}


def run_pipeline(config: Config, run: RunDir) -> dict:
    """The whole V-STaR run. Returns the evaluation metrics."""
    from vstar import stages
    from vstar.evaluation.stage import evaluate_run

    _write_config(config, run)
    task = get_task(config.task.name, config.task.options)
    seed = config.run.seed
    try:
        base_key = fingerprint(_settings(config, "model"), seed)
        _stage(run, "base", base_key, lambda: {"path": stages.prepare_base(config, run)})
        base_path = str(run.base) if config.model.base == "embedded" else config.model.base

        sft_key = fingerprint(base_key, _settings(config, "task", "generator"), seed)
        _stage(run, "sft", sft_key, lambda: stages.train_generator(
            config, base_path, stages.gold_examples(task), run.sft, seed))

        query = task.problems("query")
        gen_key = sft_key
        for t in range(1, config.run.iterations + 1):
            folder = run.iteration(t)
            samples_key = fingerprint(gen_key, _settings(config, "sampling"), t)
            _stage(run, f"iter_{t}.samples", samples_key, lambda t=t, folder=folder: stages.sample(
                config, str(run.generator(t - 1)), query, config.sampling.k, seed + 1000 * t,
                folder / "samples.jsonl", config.sampling.temperature, desc=f"iteration {t}: sampling"))
            labels_key = fingerprint(samples_key, _settings(config, "task"))
            _stage(run, f"iter_{t}.labels", labels_key, lambda t=t, folder=folder: stages.label(
                config, task, query, folder / "samples.jsonl", folder / "labels.jsonl"))
            gen_key = fingerprint(sft_key, [marker_key(run.marker(f"iter_{i}.labels")) for i in range(1, t + 1)])
            _stage(run, f"iter_{t}.generator", gen_key, lambda t=t: stages.train_generator(
                config, base_path, stages.generator_data(task, run, t), run.generator(t), seed + t))

        iterations = list(range(1, config.run.iterations + 1))
        labels_keys = [marker_key(run.marker(f"iter_{t}.labels")) for t in iterations]
        verifier_key = fingerprint(sft_key, labels_keys, _settings(config, "verifier"))
        _stage(run, "verifier", verifier_key, lambda: stages.train_verifier(
            config, run, task, iterations, run.verifier))

        eval_key = fingerprint(gen_key, verifier_key, _settings(config, "eval", "sampling"))
        _stage(run, "eval", eval_key, lambda: {"n_problems": evaluate_run(
            config, run, task, str(run.generator(config.run.iterations)), str(run.verifier), run.eval)["n_problems"]})
    finally:
        task.close()
    return _load_metrics(run)


def _load_metrics(run: RunDir) -> dict:
    import json

    path = run.eval / "metrics.json"
    if not path.exists():
        raise VstarError(f"{path}: missing although the eval stage is marked complete; rerun with --resume.")
    return json.loads(path.read_text())


def _write_config(config: Config, run: RunDir) -> None:
    import torch
    import transformers
    import trl

    header = (
        f"# resolved vstar config\n# vstar {__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, trl {trl.__version__}, python {platform.python_version()}\n"
    )
    text = header + dump_yaml(config)
    if not run.config.exists() or run.config.read_text() != text:
        write_text(run.config, text)
