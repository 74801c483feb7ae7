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
from pathlib import Path
from typing import Callable, Sequence

from vstar import __version__, baselines, stages
from vstar.config import Config, dump_yaml, transfer_config
from vstar.errors import VstarError
from vstar.evaluation import stage as ev
from vstar.models.pretrained import resolve_model
from vstar.rundir import (
    RunDir,
    clear_marker,
    fingerprint,
    is_done,
    mark_done,
    marker_key,
    read_summary,
    remove_stray_temp_files,
    resource_problem,
    write_text,
)
from vstar.tasks import Task, get_task

log = logging.getLogger("vstar")


def _stage(run: RunDir, name: str, key: str | dict, work: Callable[[], dict], outputs: Sequence[Path] = ()) -> dict:
    """Run ``work`` unless the stage's marker records ``key`` and its ``outputs`` are intact;
    then mark it done. ``key`` is a fingerprint, or a dict of named inputs (settings, files as
    ``Path``) that the marker records one by one."""
    marker = run.marker(name)
    inputs = {}
    if isinstance(key, dict):
        inputs = {part: fingerprint(value) for part, value in key.items()}
        key = fingerprint(inputs)
    if is_done(marker, key):
        log.info("stage %-18s already complete, skipped", name)
        return read_summary(marker)
    clear_marker(marker)
    log.info("stage %-18s running", name)
    started = time.time()
    try:
        summary = work() or {}
    except Exception as exc:
        problem = None if isinstance(exc, VstarError) else resource_problem(exc, run.root)
        if problem is None:
            raise
        raise VstarError(
            f"stage {name}: {problem} The stage was not marked complete and no finished output was "
            f"damaged; free the resource, then continue with `vstar run --resume {run.root}`."
        ) from exc
    summary["seconds"] = round(time.time() - started, 1)
    mark_done(marker, key, summary, outputs, inputs)
    log.info("stage %-18s done in %.1fs", name, summary["seconds"])
    return summary


def _settings(config: Config, *sections: str) -> dict:
    return {name: dataclasses.asdict(getattr(config, name)) for name in sections}


def _fields(config: Config, *names: str) -> dict:
    """The named settings ("section.field", or a whole "section"): what a stage's key depends on."""
    values = {}
    for name in names:
        section, _, field = name.partition(".")
        values[name] = getattr(getattr(config, section), field) if field else _settings(config, section)[section]
    return values


#: settings that change how a model trains, besides its own section
TRAINING = ("model.dtype", "model.chat_template", "execution.num_processes")
#: settings that change sampled text, besides k and temperature (their values differ per stage)
SAMPLING = ("sampling.top_p", "sampling.max_new_tokens", "sampling.batch_size", "sampling.backend",
            "execution.backend", "model.dtype", "model.chat_template")


def task_inputs(task: Task, splits: Sequence[str] = ("sft", "query", "test")) -> dict[str, str]:
    """A fingerprint of each split's problems: the task's data as the stages consume it (ids,
    prompts, gold solutions and answers, checker data), so an edited data file redoes them."""
    return {
        split: fingerprint([[p.id, p.prompt, p.solution, p.answer, dict(p.meta)] for p in task.problems(split)])
        for split in splits
    }


def run_pipeline(config: Config, run: RunDir, task: Task | None = None) -> dict:
    """The whole V-STaR run. Returns the evaluation metrics. ``task``: the configured task, if
    the caller built it already."""
    remove_stray_temp_files(run.root)
    _write_config(config, run)
    task = task or get_task(config.task.name, config.task.options)
    transfers: dict[str, Task] = {}
    try:
        for name, options in config.eval.transfer.items():  # built now: a bad name or option fails before training
            transfers[name] = get_task(name, options or {})
        data = task_inputs(task)
        base_path, sft_key = _train_sft(config, run, task, data)
        _iterate(config, run, task, data, base_path)
        iterations = list(range(1, config.run.iterations + 1))
        _stage(run, "verifier", {
            "G_SFT": run.sft, "D_SFT": data["sft"], "samples": _iteration_files(run, iterations),
            "settings": _fields(config, "verifier", *TRAINING), "seed": config.run.seed,
        }, lambda: stages.train_verifier(config, run, task, iterations, run.verifier), [run.verifier])
        labels_keys = [marker_key(run.marker(f"iter_{t}.labels")) for t in iterations]
        baselines_key = _run_baselines(config, run, task, base_path, sft_key, labels_keys)
        _evaluate(config, run, task, data["test"], baselines_key)
        for name, other_task in transfers.items():
            _transfer(config, run, name, other_task, baselines_key)
    finally:
        for opened in [task, *transfers.values()]:
            opened.close()
    from vstar.evaluation.metrics_files import refresh_metrics

    refresh_metrics(run.root)  # a resumed run's metrics.json from older metrics code: recomputed
    return _load_metrics(run)


def _train_sft(config: Config, run: RunDir, task: Task, data: dict) -> tuple[str, str]:
    """G_base (built for 'embedded') and G_SFT. Returns G_base's path and the sft stage's key."""
    seed = config.run.seed
    embedded = config.model.base == "embedded"
    _stage(run, "base", {"settings": _settings(config, "model"), "seed": seed},
           lambda: {"path": stages.prepare_base(config, run)}, [run.base] if embedded else [])
    base_path = str(run.base) if embedded else resolve_model(config.model.base)
    sft_inputs = {"G_base": stages.model_identity(base_path), "D_SFT": data["sft"],
                  "settings": _fields(config, "generator", *TRAINING), "seed": seed}
    _stage(run, "sft", sft_inputs, lambda: stages.train_generator(
        config, base_path, stages.gold_examples(task), run.sft, seed), [run.sft])
    return base_path, fingerprint({k: fingerprint(v) for k, v in sft_inputs.items()})


def _iteration_files(run: RunDir, iterations: Sequence[int]) -> list[Path]:
    return [run.iteration(t) / name for t in iterations for name in ("samples.jsonl", "labels.jsonl")]


def _iterate(config: Config, run: RunDir, task: Task, data: dict, base_path: str) -> None:
    """The T iterations: sample from G_{t-1}, label, retrain G_t from G_base on D_GEN."""
    seed = config.run.seed
    query = task.problems("query")
    for t in range(1, config.run.iterations + 1):
        folder = run.iteration(t)
        _stage(run, f"iter_{t}.samples", {
            "generator": run.generator(t - 1), "D_query": data["query"],
            "settings": _fields(config, "sampling.k", "sampling.temperature", *SAMPLING), "seed": seed, "t": t,
            "stop": list(task.stop),
        }, lambda t=t, folder=folder: stages.sample(
            config, str(run.generator(t - 1)), query, config.sampling.k, seed + 1000 * t,
            folder / "samples.jsonl", config.sampling.temperature, desc=f"iteration {t}: sampling", stop=task.stop),
            [folder / "samples.jsonl"])
        _stage(run, f"iter_{t}.labels", {
            "samples": folder / "samples.jsonl", "D_query": data["query"], "settings": _settings(config, "task"),
        }, lambda folder=folder: stages.label(config, task, query, folder / "samples.jsonl", folder / "labels.jsonl"),
            [folder / "labels.jsonl"])
        _stage(run, f"iter_{t}.generator", {
            "G_base": stages.model_identity(base_path), "D_SFT": data["sft"],
            "samples": _iteration_files(run, range(1, t + 1)),
            "settings": _fields(config, "generator", *TRAINING), "seed": seed + t,
        }, lambda t=t: stages.train_generator(
            config, base_path, stages.generator_data(task, run, t), run.generator(t), seed + t),
            [run.generator(t)])


def _evaluate(config: Config, run: RunDir, task: Task, test_data: str, baselines_key: str) -> None:
    """Evaluation as four resumable stages: candidates, labels, scores, metrics (+ baselines)."""
    final, out = run.generator(config.run.iterations), run.eval
    files = {name: out / f"{name}.jsonl" for name in ("candidates", "labels", "scores")}
    compute: dict = {}
    compute.update(_stage(run, "eval.candidates", {
        "G_T": final, "G_SFT": run.sft, "D_test": test_data,
        "settings": _fields(config, "eval.n_candidates", "eval.temperature", *SAMPLING), "seed": config.run.seed,
        "stop": list(task.stop),
    }, lambda: ev.sample_candidates(config, run, task, str(final), out), [files["candidates"]]))
    compute.update(_stage(run, "eval.labels", {
        "candidates": files["candidates"], "D_test": test_data, "settings": _settings(config, "task"),
    }, lambda: ev.label_candidates(config, task, out), [files["labels"]]))
    compute.update(_stage(run, "eval.scores", {
        "candidates": files["candidates"], "G_T": final, "G_SFT": run.sft, "V": run.verifier,
        "settings": _fields(config, "model.dtype", "model.chat_template", "execution.backend"),
    }, lambda: ev.score_candidates(config, run, str(final), str(run.verifier), out), [files["scores"]]))
    extra_curves = None
    if baselines.enabled(config):
        summary = _stage(run, "eval.baselines", {
            "candidates": files["candidates"], "baselines": baselines_key,
            "settings": _fields(config, "eval", "baselines", *SAMPLING),
        }, lambda: baselines.evaluate_baselines(config, run, task, out))
        extra_curves = summary.get("curves")
        compute.update({k: v for k, v in summary.items() if k != "curves"})
    compute.pop("seconds", None)
    _stage(run, "eval", {
        "files": list(files.values()), "classifier_scores": out / "classifier_scores.jsonl", "compute": compute,
        "curves": extra_curves, "settings": _fields(config, "eval", "verifier.beta"), "seed": config.run.seed,
    }, lambda: {"n_problems": ev.write_metrics(config, out, compute, extra_curves)["n_problems"]},
        [out / "metrics.json"])


def evaluate_run(config: Config, run: RunDir, task: Task, final_generator: str, verifier: str | None, out_dir: Path) -> dict:
    """All of evaluation in one go (``vstar evaluate``, transfer tasks): candidates, labels,
    scores (+ the baselines'), then metrics, written into ``out_dir``."""
    summary = ev.sample_candidates(config, run, task, final_generator, out_dir)
    summary.update(ev.label_candidates(config, task, out_dir))
    summary.update(ev.score_candidates(config, run, final_generator, verifier, out_dir))
    extra_curves = None
    if baselines.enabled(config):
        summary.update(baselines.evaluate_baselines(config, run, task, out_dir))
        extra_curves = summary.pop("curves")
    return ev.write_metrics(config, out_dir, summary, extra_curves)


def _transfer(config: Config, run: RunDir, name: str, task: Task, baselines_key: str) -> None:
    """Evaluate G_T + V on another task's test split (eval.transfer) -> eval_<task>/metrics.json."""
    other = transfer_config(config, name, config.eval.transfer[name] or {})
    final, out = run.generator(config.run.iterations), run.root / f"eval_{name}"
    _stage(run, f"transfer.{name}", {
        "G_T": final, "G_SFT": run.sft, "V": run.verifier, "D_test": task_inputs(task, ("test",))["test"],
        "baselines": baselines_key, "settings": _fields(other, "task", "eval", "verifier.beta", *SAMPLING),
        "seed": config.run.seed,
    }, lambda: {"n_problems": evaluate_run(other, run, task, str(final), str(run.verifier), out)["n_problems"]},
        [out / "metrics.json"])


def _run_baselines(config: Config, run: RunDir, task, base_path: str, sft_key: str, labels_keys: list[str]) -> str:
    """RFT, V-STaR[1 iter], ORM and GenRM, as enabled in ``config.baselines``; returns their joint key."""
    enabled = config.baselines
    keys = []
    if enabled.rft:
        rft_key = fingerprint(sft_key, labels_keys[0], _settings(config, "sampling"), list(task.stop), "rft")
        _stage(run, "rft.samples", rft_key, lambda: baselines.rft_samples(config, run, task))
        rft_key = fingerprint(rft_key, _settings(config, "generator"))
        _stage(run, "rft.generator", rft_key, lambda: baselines.rft_generator(config, run, task, base_path))
        keys.append(rft_key)
        if enabled.vstar_1iter:
            key = fingerprint(rft_key, _settings(config, "verifier"))
            _stage(run, "verifier_1iter", key, lambda: baselines.verifier_1iter(config, run, task))
            keys.append(key)
    for kind in ("orm", "genrm"):
        if getattr(enabled, kind):
            key = fingerprint(sft_key, labels_keys, _settings(config, "verifier", "baselines"), kind)
            _stage(run, kind, key, lambda kind=kind: baselines.train_classifier_verifier(config, run, task, kind))
            keys.append(key)
    return fingerprint(keys, _settings(config, "baselines"))


def _load_metrics(run: RunDir) -> dict:
    import json

    path = run.eval / "metrics.json"
    if not path.exists():
        raise VstarError(f"{path}: missing although the eval stage is marked complete; rerun with --resume.")
    return json.loads(path.read_text())


def _write_config(config: Config, run: RunDir) -> None:
    """config.yaml: the resolved config, headed by the versions (read without importing the libraries)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    libraries = ", ".join(f"{name} {installed(name)}" for name in ("torch", "transformers", "trl"))
    header = f"# resolved vstar config\n# vstar {__version__}, {libraries}, python {platform.python_version()}\n"
    text = header + dump_yaml(config)
    if not run.config.exists() or run.config.read_text() != text:
        write_text(run.config, text)
