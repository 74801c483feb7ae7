"""What each ``vstar`` subcommand does (argument parsing lives in ``cli.py``)."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vstar.config import Config, describe, dump_yaml, load_config
from vstar.errors import VstarError
from vstar.logs import setup_logging
from vstar.rundir import RunDir, read_jsonl, write_jsonl


@contextmanager
def run_lock(root: Path) -> Iterator[None]:
    """Only one process may write a run directory at a time."""
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise VstarError(
            f"run directory '{root}' is in use by another vstar process (lock file {root / '.lock'}). "
            "Wait for it to finish, or use another --run-dir."
        ) from None
    try:
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
    if config_path is None and resume_dir and (Path(resume_dir) / "config.yaml").exists():
        config_path = str(Path(resume_dir) / "config.yaml")
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
    _check_writable(run.root)
    with run_lock(run.root):
        setup_logging(run.log_file, debug=args.debug)
        _set_threads(config)
        from vstar.pipeline import run_pipeline
        from vstar.report import write_report

        print(f"vstar: run directory {run.root}\n--- resolved config ---\n{dump_yaml(config)}---", file=sys.stderr)
        metrics = run_pipeline(config, run)
        report = write_report([run.root])
    from vstar.report.text import format_table

    print(format_table(metrics))
    print(f"\nreport: {report}")
    return 0


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VstarError(f"run directory '{root}' cannot be created: {exc.strerror}.") from None
    if not os.access(root, os.W_OK):
        raise VstarError(f"run directory '{root}' is not writable.")


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
                     config.run.seed, Path(args.out), config.sampling.temperature, desc=f"sampling {args.split}")
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
    print(json.dumps(train_generator(config, args.base, examples, Path(args.out), config.run.seed)))
    return 0


def cmd_train_verifier(args: argparse.Namespace) -> int:
    from vstar.training.dpo import train_dpo

    config = load_config(args.config, args.overrides)
    setup_logging(debug=args.debug)
    pairs = _read_records(args.pairs, ("prompt", "chosen", "rejected"))
    print(json.dumps(train_dpo(args.sft, pairs, Path(args.out), config.verifier, config.run.seed, config.model.dtype)))
    return 0


def _read_records(path: str, fields: tuple[str, ...]) -> list[dict]:
    if not Path(path).exists():
        raise VstarError(f"'{path}': no such file.")
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VstarError(f"{path}, line {line_no}: not valid JSON ({exc.msg}).") from None
            for name in fields:
                if not isinstance(record.get(name), str):
                    raise VstarError(f"{path}, line {line_no}: field '{name}' missing or not a string.")
            records.append(record)
    if not records:
        raise VstarError(f"'{path}' is empty; expected JSONL records with fields {', '.join(fields)}.")
    return records


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vstar.evaluation.stage import evaluate_run
    from vstar.report.text import format_table

    run = RunDir(args.run)
    if not run.config.exists():
        raise VstarError(f"'{args.run}' is not a vstar run directory (no config.yaml).")
    overrides = list(args.overrides) + ([f"task.name={args.task}", "task.options={}"] if args.task else [])
    config = load_config(run.config, overrides)
    setup_logging(run.log_file, debug=args.debug)
    final = run.generator(config.run.iterations)
    out_dir = run.eval if not args.task else run.root / f"eval_{args.task}"
    task = _task(config)
    try:
        metrics = evaluate_run(config, run, task, str(final), str(run.verifier), out_dir)
    finally:
        task.close()
    print(format_table(metrics))
    print(f"\nmetrics: {out_dir / 'metrics.json'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vstar.report import write_report

    print(write_report([Path(r) for r in args.runs]))
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


__all__ = ["cmd_run", "read_jsonl", "write_jsonl"]
