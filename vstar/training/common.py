"""Settings shared by the SFT and DPO trainers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from vstar.config import TrainSection

log = logging.getLogger("vstar")


def trainer_kwargs(train: TrainSection, out_dir: Path, seed: int, num_examples: int) -> dict[str, Any]:
    """Keyword arguments common to ``SFTConfig`` and ``DPOConfig``."""
    on_gpu = torch.cuda.is_available()
    steps_per_epoch = max(1, -(-num_examples // (train.batch_size * train.grad_accum)))
    capped = train.max_steps > 0 and steps_per_epoch * train.epochs > train.max_steps
    return dict(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps if capped else -1,
        learning_rate=train.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=train.warmup_ratio,
        weight_decay=train.weight_decay,
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        max_length=train.max_length,
        seed=seed,
        data_seed=seed,
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        fp16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=max(1, steps_per_epoch // 4),
        disable_tqdm=True,  # ProgressBar below shows one bar with the loss instead
        dataloader_num_workers=0,
        remove_unused_columns=True,
    )


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
                from tqdm.auto import tqdm

                bar_holder.bar = tqdm(total=state.max_steps, desc=desc, unit="step", leave=False)

            def on_step_end(self, args, state, control, **kwargs):
                bar_holder.bar.update(1)

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    bar_holder.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")
                    log.debug("%s step %d: %s", desc, state.global_step, logs)

            def on_train_end(self, args, state, control, **kwargs):
                bar_holder.bar.close()

        self.callback = _Callback()
