"""Multi-process training: generator SFT and verifier DPO under ``accelerate launch``.

When ``execution.num_processes > 1``, ``train_sft`` / ``train_dpo`` hand their arguments
to ``launch_training``, which writes them to a stage spec (JSON, plus the examples as
JSONL) and starts::

    python -m accelerate.commands.launch --num_processes N [--config_file F | --multi_gpu] \\
        -m vstar.training.launch SPEC.json

Each launched process (one per GPU; on a CPU-only machine, gloo processes) runs ``main``,
which calls the same trainer with the same arguments; the TRL trainer then does the
data-parallel work (DDP, or DeepSpeed / FSDP from the accelerate config). The main
process saves the model and ``train_summary.json``, which ``launch_training`` returns.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from vstar import config as config_module
from vstar.config import ExecutionSection, TrainSection
from vstar.errors import VstarError

#: stage kind -> (module, function) of the trainer the launched processes run
TRAINERS = {"sft": ("vstar.training.sft", "train_sft"), "dpo": ("vstar.training.dpo", "train_dpo")}
SUMMARY_FILE = "train_summary.json"


def _local_or_id(path: str) -> str:
    """An absolute path for a local model directory (the launched processes may start elsewhere); hub ids as they are."""
    return str(Path(path).resolve()) if Path(path).exists() else str(path)


def write_spec(
    folder: Path, kind: str, model_path: str, records: Sequence[dict], out_dir: Path, train: TrainSection,
    seed: int, dtype: str, chat_template: str = "auto",
) -> Path:
    """Write the stage spec (and its records) into ``folder``; return the spec's path."""
    data_file = folder / "records.jsonl"
    with data_file.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    spec = {
        "kind": kind,
        "model_path": _local_or_id(model_path),
        "data_file": str(data_file.resolve()),
        "out_dir": str(Path(out_dir).resolve()),
        "train_class": type(train).__name__,
        "train": dataclasses.asdict(train),
        "seed": seed,
        "dtype": dtype,
        "chat_template": chat_template,
    }
    spec_file = folder / "stage.json"
    spec_file.write_text(json.dumps(spec, indent=2))
    return spec_file


def accelerate_command(spec_file: Path, execution: ExecutionSection) -> list[str]:
    """The ``accelerate launch`` command line that runs ``main(spec_file)`` in ``num_processes`` processes."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(execution.num_processes)]
    if execution.accelerate_config:
        config_file = Path(execution.accelerate_config)
        if not config_file.is_file():
            raise VstarError(
                f"execution.accelerate_config: '{config_file}' does not exist (expected an accelerate config "
                "YAML, e.g. configs/accelerate/ddp.yaml)."
            )
        command += ["--config_file", str(config_file.resolve())]
    else:
        # one machine, plain data parallel: torchrun's launcher (NCCL on GPUs, gloo without them)
        command += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return command + ["-m", "vstar.training.launch", str(spec_file)]


def launch_training(
    kind: str, model_path: str, records: Sequence[dict], out_dir: Path, train: TrainSection, seed: int,
    dtype: str, execution: ExecutionSection, chat_template: str = "auto",
) -> dict:
    """Run the ``kind`` trainer ("sft" or "dpo") under ``accelerate launch``; return its summary."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.launch-", dir=out_dir.parent))
    try:
        spec_file = write_spec(folder, kind, model_path, records, out_dir, train, seed, dtype, chat_template)
        command = accelerate_command(spec_file, execution)
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // execution.num_processes)))
        done = subprocess.run(command, env=env, check=False)
        if done.returncode != 0:
            raise VstarError(
                f"{kind} training in {execution.num_processes} processes failed (exit {done.returncode}); "
                f"the command was: {' '.join(command)}"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary_file = out_dir / SUMMARY_FILE
    if not summary_file.exists():
        raise VstarError(f"{kind} training finished without writing {summary_file}.")
    return json.loads(summary_file.read_text())


def read_spec(spec_file: Path) -> dict:
    """The stage spec, with ``train`` rebuilt as its config section and ``records`` loaded."""
    try:
        spec = json.loads(Path(spec_file).read_text())
        train_class = getattr(config_module, spec["train_class"])
        if not (isinstance(train_class, type) and issubclass(train_class, TrainSection)):
            raise TypeError(f"{spec['train_class']} is not a training section")
        spec["train"] = train_class(**spec["train"])
        lines = Path(spec["data_file"]).read_text(encoding="utf-8").splitlines()
        spec["records"] = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VstarError(f"{spec_file}: not a valid vstar stage spec ({type(exc).__name__}: {exc}).") from None
    if spec["kind"] not in TRAINERS:
        raise VstarError(f"{spec_file}: field 'kind' must be one of {', '.join(TRAINERS)}, got {spec['kind']!r}.")
    return spec


def run_spec(spec_file: Path) -> dict:
    """The body of each launched process: call the trainer named by the spec (no further launching)."""
    import importlib

    spec = read_spec(spec_file)
    module_name, function_name = TRAINERS[spec["kind"]]
    trainer = getattr(importlib.import_module(module_name), function_name)
    return trainer(spec["model_path"], spec["records"], Path(spec["out_dir"]), spec["train"], spec["seed"], spec["dtype"],
                   chat_template=spec.get("chat_template", "auto"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m vstar.training.launch STAGE_SPEC.json", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") != "0":
        os.environ["TQDM_DISABLE"] = "1"  # one progress bar, from the main process
    try:
        run_spec(Path(args[0]))
    except VstarError as exc:
        print(f"vstar: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
