"""Settings shared by the SFT and DPO trainers."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from vstar.config import TrainSection
from vstar.progress import tqdm

log = logging.getLogger("vstar")

#: how many checkpoints a training run writes (every ``1/CHECKPOINTS_PER_RUN`` of its steps)
CHECKPOINTS_PER_RUN = 10
#: written into a checkpoint folder once everything in it is on disk
COMPLETE_FILE = ".complete"


def trainer_kwargs(train: TrainSection, out_dir: Path, seed: int, num_examples: int,
                   dtype: str = "float32") -> dict[str, Any]:
    """Keyword arguments common to ``SFTConfig`` and ``DPOConfig``. Mixed precision only when
    ``model.dtype`` asks for it (bf16/fp16) and a GPU is there."""
    on_gpu = torch.cuda.is_available()
    processes = int(os.environ.get("WORLD_SIZE", 1))  # under `accelerate launch`, each takes a share
    steps_per_epoch = max(1, -(-num_examples // (train.batch_size * train.grad_accum * processes)))
    capped = train.max_steps > 0 and steps_per_epoch * train.epochs > train.max_steps
    total_steps = train.max_steps if capped else math.ceil(steps_per_epoch * train.epochs)
    return dict(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps if capped else -1,
        learning_rate=train.learning_rate,
        lr_scheduler_type="linear",
        # a run so short that warm-up would take every step (1 step at lr 0) gets none instead
        warmup_steps=train.warmup_ratio if math.ceil(train.warmup_ratio * total_steps) < total_steps else 0,
        weight_decay=train.weight_decay,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        max_length=train.max_length,
        seed=seed,
        data_seed=seed,
        use_cpu=not on_gpu,
        bf16=on_gpu and dtype == "bfloat16",
        fp16=on_gpu and dtype == "float16",
        report_to="none",
        # a checkpoint every tenth of the run, the last two kept: a killed run loses at most ~10%
        save_strategy="steps",
        save_steps=max(1, math.ceil(total_steps / CHECKPOINTS_PER_RUN)),
        save_total_limit=2,
        logging_steps=max(1, steps_per_epoch // 4),
        disable_tqdm=True,  # ProgressBar below shows one bar with the loss instead
        dataloader_num_workers=0,
        remove_unused_columns=True,
    )


def record_adapter_base(out_dir: Path, base_path: str) -> None:
    """Make a saved LoRA adapter name the model it was trained on (``base_path``), not whatever
    that model was loaded from: a LoRA verifier trained on a LoRA G_SFT is an adapter on G_SFT
    (itself G_base + an adapter), and must reload as that. A local base is recorded relative to
    the adapter's folder when it is near (a sibling in the run directory), else absolute."""
    config_file = Path(out_dir) / "adapter_config.json"
    if not config_file.is_file():
        return
    import json

    base = Path(base_path).expanduser()
    recorded = base_path
    if base.exists():
        relative = os.path.relpath(base.resolve(), Path(out_dir).resolve())
        recorded = relative if relative.count("..") <= 2 else str(base.resolve())
    adapter = json.loads(config_file.read_text())
    adapter["base_model_name_or_path"] = recorded
    config_file.write_text(json.dumps(adapter, indent=2, sort_keys=True))


def lora_config(train: TrainSection):
    """A PEFT LoRA config for ``method: lora``, else ``None``."""
    if train.method != "lora":
        return None
    from peft import LoraConfig

    targets = train.lora_targets
    return LoraConfig(
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules="all-linear" if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        task_type="CAUSAL_LM",
    )


def final_losses(log_history: list[dict]) -> dict[str, float]:
    """First and last logged training loss, for the stage summary."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return {"first_loss": losses[0], "last_loss": losses[-1]} if losses else {}


class ProgressBar:
    """A trainer callback: one tqdm bar per training run, with the latest loss; logs to the vstar log."""

    def __init__(self, desc: str):
        from transformers import TrainerCallback

        bar_holder = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                bar_holder.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=desc, unit="step", leave=False)

            def on_step_end(self, args, state, control, **kwargs):
                bar_holder.bar.update(1)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    bar_holder.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")
                    log.debug("%s step %d: %s", desc, state.global_step, logs)

            def on_train_end(self, args, state, control, **kwargs):
                bar_holder.bar.close()

        self.callback = _Callback()


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest complete checkpoint under ``out_dir/checkpoints`` to resume from, or None.

    Checkpoint folders without the completion file (a run killed while saving) are removed.
    """
    folder = Path(out_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    found = {}
    for path in folder.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            found[int(match.group(1))] = path
    complete = [step for step, path in found.items() if (path / COMPLETE_FILE).exists()]
    for step, path in found.items():
        if step not in complete:
            shutil.rmtree(path, ignore_errors=True)
    if not complete:
        return None
    log.info("resuming training from %s", found[max(complete)])
    return str(found[max(complete)])


def checkpoint_callback():
    """A trainer callback that makes each saved checkpoint durable, then marks it complete."""
    from transformers import TrainerCallback

    from vstar.rundir import fsync_tree, write_text

    class _MarkComplete(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if path.is_dir():
                    fsync_tree(path)
                    write_text(path / COMPLETE_FILE, str(state.global_step))

    return _MarkComplete()
