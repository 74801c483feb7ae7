"""What each ``vstar`` subcommand does (argument parsing lives in ``cli.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vstar.config import Config, describe, dump_yaml, load_config, transfer_config
from vstar.errors import VstarError
from vstar.logs import setup_logging
from vstar.rundir import RunDir


@contextmanager
def run_lock(root: Path) -> Iterator[None]:
    """Only one process may write a run directory at a time (an flock on ``<root>/.lock``,
    released by the OS even when the holder is killed)."""
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise VstarError(
            f"run directory '{root}' is in use by another vstar process"
            f"{f' (pid {holder})' if holder else ''}; its lock file is {root / '.lock'}. "
            "Wait for it to finish, or use another --run-dir."
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _resolve_run(args: argparse.Namespace) -> tuple[Config, RunDir]:
    resume_dir = args.resume if isinstance(args.resume, str) else None
    run_dir = args.run_dir or resume_dir
    config_path = args.config
    if config_path is None and resume_dir:
        if not Path(resume_dir).is_dir():
            raise VstarError(f"--resume {resume_dir}: no such run directory.")
        config_path = Path(resume_dir) / "config.yaml"
        if not config_path.exists():
            raise VstarError(
                f"--resume {resume_dir}: no config.yaml in it (the run stopped before it began). Start it "
                f"again with `vstar run --config FILE --run-dir {resume_dir}`, or pass --config with --resume."
            )
    config = load_config(config_path, args.overrides)
    root = Path(run_dir) if run_dir else config.run_dir
    if resume_dir and not root.exists():
        raise VstarError(f"--resume {resume_dir}: no such run directory.")
    if not args.resume and (root / "markers").exists():
        raise VstarError(
            f"run directory '{root}' already holds a run. Continue it with `vstar run --resume {root}`, "
            "or choose another with --run-dir DIR or --set run.name=NAME."
        )
    return config, RunDir(root)


def cmd_run(args: argparse.Namespace) -> int:
    if args.help_config:
        print(describe())
        return 0
    config, run = _resolve_run(args)
    task = preflight(config)  # bad data or model paths fail here, before anything is written
    try:
        created = not run.root.exists()
        _check_writable(run.root)
        with run_lock(run.root):
            try:
                metrics, report = _run_locked(config, run, task, args.debug)
            except BaseException:
                if created:
                    _remove_unstarted_run(run)
                raise
    finally:
        task.close()
    from vstar.report.text import format_table

    print(format_table(metrics))
    print(f"\nreport: {report}")
    return 0


def _run_locked(config: Config, run: RunDir, task, debug: bool) -> tuple[dict, Path]:
    setup_logging(run.log_file, debug=debug)
    _set_threads(config)
    from vstar.pipeline import run_pipeline
    from vstar.report import write_report

    print(f"vstar: run directory {run.root}\n--- resolved config ---\n{dump_yaml(config)}---", file=sys.stderr)
    metrics = run_pipeline(config, run, task)
    return metrics, write_report([run.root])


def preflight(config: Config):
    """Build the task (reading and checking its data) and check the base model path; returns the task.

    Every split must hold problems, and D_SFT gold solutions: a run without them fails later.
    """
    task = _task(config)
    try:
        splits = {"sft": [p for p in task.problems("sft") if p.solution], "query": task.problems("query"),
                  "test": task.problems("test")}
        for split, problems in splits.items():
            if not problems:
                what = "problems with a gold solution" if split == "sft" else "problems"
                raise VstarError(
                    f"task '{config.task.name}' (task.options {config.task.options}): the {split} split has no "
                    f"{what}; check the data file and the task options (see `vstar tasks`)."
                )
        if config.model.base != "embedded":
            from vstar.models.load import check_model
            from vstar.models.pretrained import resolve_model

            check_model(resolve_model(config.model.base), "model.base")
    except BaseException:
        task.close()
        raise
    return task


def _remove_unstarted_run(run: RunDir) -> None:
    """Remove a run directory that this command created when no stage completed in it."""
    markers = run.root / "markers"
    if not (markers.is_dir() and any(markers.glob("*.done.json"))):
        shutil.rmtree(run.root, ignore_errors=True)


def _check_writable(root: Path) -> None:
    """The run directory exists (or is created) and a file can be written in it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VstarError(
            f"run directory '{root}' cannot be created: {exc.strerror}. Choose another with --run-dir DIR."
        ) from None
    try:
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise VstarError(
            f"run directory '{root}' is not writable: {exc.strerror}. Fix its permissions or choose another "
            "with --run-dir DIR."
        ) from None


def _set_threads(config: Config) -> None:
    if config.run.threads > 0:
        import torch

        torch.set_num_threads(config.run.threads)


def _task(config: Config):
    from vstar.tasks import get_task

    return get_task(config.task.name, config.task.options)


def cmd_sample(args: argparse.Namespace) -> int:
    from vstar.stages import sample

    config = load_config(args.config, args.overrides)
    setup_logging(debug=args.debug)
    task = _task(config)
    summary = sample(config, args.model, task.problems(args.split), args.n or config.sampling.k,
                     config.run.seed, Path(args.out), config.sampling.temperature, desc=f"sampling {args.split}",
                     stop=task.stop)
    print(json.dumps(summary))
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from vstar.stages import label

    config = load_config(args.config, args.overrides)
    setup_logging(debug=args.debug)
    task = _task(config)
    try:
        summary = label(config, task, task.problems(args.split), Path(args.samples), Path(args.out))
    finally:
        task.close()
    print(json.dumps(summary))
    return 0


def cmd_train_generator(args: argparse.Namespace) -> int:
    from vstar.stages import train_generator

    config = load_config(args.config, args.overrides)
    setup_logging(debug=args.debug)
    examples = _read_records(args.data, ("prompt", "completion"))
    from vstar.models.pretrained import resolve_model

    base = resolve_model(args.base)
    print(json.dumps(train_generator(config, base, examples, Path(args.out), config.run.seed)))
    return 0


def cmd_train_verifier(args: argparse.Namespace) -> int:
    from vstar.training.dpo import train_dpo

    config = load_config(args.config, args.overrides)
    setup_logging(debug=args.debug)
    from vstar.rundir import fingerprint
    from vstar.stages import finish_training_dir, model_identity, training_dir

    pairs = _read_records(args.pairs, ("prompt", "chosen", "rejected"))
    out = Path(args.out)
    key = fingerprint(model_identity(args.sft), pairs, dataclasses.asdict(config.verifier), config.run.seed)
    tmp = training_dir(out, key)  # a killed run resumes from its last checkpoint here
    summary = train_dpo(args.sft, pairs, tmp, config.verifier, config.run.seed, config.model.dtype, config.execution,
                        config.model.chat_template)
    finish_training_dir(tmp, out)
    print(json.dumps(summary))
    return 0


def _read_records(path: str, fields: tuple[str, ...]) -> list[dict]:
    """Records of a JSONL/JSON/Parquet file, each with string ``fields`` (errors name file and line)."""
    from vstar.tasks.jsonl import read_rows

    records = []
    for row in read_rows(path):
        for name in fields:
            if not isinstance(row.data.get(name), str):
                raise VstarError(f"{row.where}: field '{name}' missing or not a string.")
        records.append(dict(row.data))
    return records


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vstar.config import transfer_config
    from vstar.pipeline import evaluate_run
    from vstar.report.text import format_table
    from vstar.tasks.base import SplitAsTest

    run = RunDir(args.run)
    if not run.config.exists():
        raise VstarError(f"'{args.run}' is not a vstar run directory (no config.yaml).")
    config = load_config(run.config, args.overrides)
    if args.task:  # the options from eval.transfer, if the run names this task there
        config = transfer_config(config, args.task, config.eval.transfer.get(args.task) or {})
    setup_logging(run.log_file, debug=args.debug)
    final = run.generator(config.run.iterations)
    out_dir = run.eval if not args.task else run.root / f"eval_{args.task}"
    task = _task(config)
    if args.split == "val":
        if args.task:
            task.close()
            raise VstarError("--split val evaluates the run's own task; leave out --task.")
        task, out_dir = SplitAsTest(task, "val"), run.root / "eval_val"
    try:
        metrics = evaluate_run(config, run, task, str(final), str(run.verifier), out_dir)
    finally:
        task.close()
    print(format_table(metrics))
    print(f"\nmetrics: {out_dir / 'metrics.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vstar.report import write_report

    print(write_report([Path(r) for r in args.runs], recompute=args.recompute))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from vstar.tasks.registry import available_tasks, get_task_class

    for name in available_tasks():
        try:
            doc = (get_task_class(name).__doc__ or "").strip()
        except ImportError as exc:
            doc = f"(unavailable: {exc})"
        print(f"{name}\n    " + doc.replace("\n", "\n    ") + "\n")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from vstar.serve.files import score_file
    from vstar.serve.inputs import score_rows

    setup_logging(debug=args.debug)
    rows = score_rows(_input_rows(args.input))  # a malformed row fails here, before a model loads
    verifier, _ = _trained_verifier(args.run)
    records = score_file(verifier, rows, Path(args.out), variant=args.variant)
    sequences = sum(len(r["scores"]) if "scores" in r else 1 for r in records)
    inputs = f"{len(records)} input row{'s' if len(records) != 1 else ''}"
    print(f"scored {sequences} completions ({inputs}) by '{args.variant}' -> {args.out}")
    return 0


def cmd_best_of_n(args: argparse.Namespace) -> int:
    from vstar.serve.files import best_of_n_file

    setup_logging(debug=args.debug)
    if args.input is None and args.task is None:
        raise VstarError("best-of-n: give --input PROMPTS.jsonl, or --task NAME for that task's problems.")
    verifier, config = _trained_verifier(args.run)
    rows, label, task = _best_of_n_rows(args, config)
    try:
        records = best_of_n_file(verifier, rows, Path(args.out), n=args.n, variant=args.variant, seed=args.seed,
                                 temperature=args.temperature, max_new_tokens=args.max_new_tokens, label=label,
                                 label_key=args.task or "")
    finally:
        if task is not None:
            task.close()
    print(f"best-of-{args.n} by '{args.variant}' for {len(records)} prompts -> {args.out}")
    if label is not None:
        correct = sum(r["correct"] for r in records)
        print(f"accuracy of the picks ({args.task}): {correct}/{len(records)} = {correct / len(records):.3f}")
    return 0


def _input_rows(path: str) -> list[tuple[str, dict]]:
    """(where, row) of each row of a JSONL, JSON or Parquet file."""
    from vstar.tasks.jsonl import read_rows

    return [(row.where, dict(row.data)) for row in read_rows(path)]


def _trained_verifier(path: str):
    """A run directory's (or a verifier checkpoint's) ``Verifier``, and the run's config (None for a
    checkpoint). Best-of-n stops at the run's task's stop strings."""
    from vstar.serve.verifier import Verifier, load_run

    if not Path(path).is_dir():
        raise VstarError(f"--run {path}: no such directory (expected a vstar run directory or a verifier checkpoint).")
    if not (Path(path) / "config.yaml").exists():
        return Verifier.from_checkpoint(path), None
    config, _ = load_run(path)
    _set_threads(config)
    return Verifier.from_run(path), config


def _best_of_n_rows(args: argparse.Namespace, config: Config | None):
    """(rows, label function or None, task or None): the input's rows or, without --input, the task's
    problems of --split; with --task, each row matched to a problem of it (by problem_id or prompt)."""
    from vstar.serve.inputs import prompt_rows

    rows = prompt_rows(_input_rows(args.input)) if args.input else []  # checked before a model loads
    if args.task is None:
        return [row for _, row in rows], None, None
    base = config or Config()
    options = base.task.options if args.task == base.task.name else base.eval.transfer.get(args.task) or {}
    task = _task(transfer_config(base, args.task, options))
    try:
        problems = _match_problems(task, rows, args.split)
    except BaseException:
        task.close()
        raise
    if not rows:
        rows = [("", {"problem_id": p.id, "prompt": p.prompt}) for p in problems]

    def label(start: int, completions: list[str]) -> list[dict]:
        return [v.to_record() for v in task.check_many(problems[start : start + len(completions)], completions)]

    return [row for _, row in rows], label, task


def _match_problems(task, rows: list[tuple[str, dict]], split: str) -> list:
    """The task's problem of each row: by its ``problem_id``, else by its prompt; no rows: ``split``'s."""
    if not rows:
        return task.problems(split)
    by_id, by_prompt = {}, {}
    for name in ("test", "query", "sft"):
        for problem in task.problems(name):
            by_id.setdefault(problem.id, problem)
            by_prompt.setdefault(problem.prompt, problem)
    problems = []
    for where, row in rows:
        problem = by_id.get(row["problem_id"]) if "problem_id" in row else by_prompt.get(row["prompt"])
        if problem is None:
            field = f"problem_id {row['problem_id']!r}" if "problem_id" in row else "prompt"
            raise VstarError(f"{where}: field {field}: no problem of task '{task.name}' has it, so the pick "
                             "cannot be checked; drop --task, or give rows of that task.")
        problems.append(problem)
    return problems


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from vstar.serve.app import ServerSettings, create_app
        from vstar.serve.server import serve_forever
    except ImportError as exc:
        raise VstarError(f"vstar serve needs the optional extra: pip install 'vstar[serve]' ({exc}).") from None
    setup_logging(debug=args.debug)
    verifier, _ = _trained_verifier(args.run)
    if args.threads is not None and args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    verifier.check_variant(args.variant)
    verifier.scorer("verifier")  # load it now: a bad checkpoint fails before the server listens
    given = {name: getattr(args, name) for name in ("max_batch", "wait_ms", "max_body_bytes", "max_sequences")}
    settings = ServerSettings(variant=args.variant, **{name: value for name, value in given.items() if value is not None})
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"vstar: warning: listening on {args.host}: other machines can reach the server, which has no "
              "authentication.", file=sys.stderr)

    def ready(url: str) -> None:
        print(f"vstar: serving {args.run} at {url} (GET /health; POST /score, /best_of_n, /get_reward)\n"
              f"vstar: OpenRLHF: --remote_rm_url {url}/get_reward", flush=True)

    try:
        serve_forever(create_app(verifier, settings), args.host, args.port,
                      log_level="info" if args.debug else "warning", on_ready=ready)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down gracefully, then passes the signal on
        pass
    print("vstar: server stopped", flush=True)
    return 0
