"""Generator training: SFT from G_base on prompt/completion pairs, loss on the completion only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from vstar.config import ExecutionSection, TrainSection
from vstar.models import load_model, load_tokenizer
from vstar.models.sequence import sequence_format
from vstar.training.common import (
    ProgressBar,
    checkpoint_callback,
    final_losses,
    last_checkpoint,
    log,
    lora_config,
    record_adapter_base,
    trainer_kwargs,
)
from vstar.training.data import sft_rows


def train_sft(
    base_path: str,
    examples: Sequence[dict],
    out_dir: Path,
    train: TrainSection,
    seed: int,
    dtype: str = "float32",
    execution: ExecutionSection | None = None,
    chat_template: str = "auto",
    setting: str = "generator.max_length",
) -> dict:
    """Fine-tune ``base_path`` on ``examples`` ({"prompt", "completion"[, "finished"]}) and save to
    ``out_dir``. The examples are tokenized by ``SequenceFormat`` (``chat_template`` is
    ``model.chat_template``); ``setting`` names the max_length field in messages.

    Returns a summary (examples, those too long, steps, first/last loss, tokens trained on).
    With ``execution.num_processes > 1`` the training runs under ``accelerate launch``.
    """
    if execution is not None and execution.num_processes > 1:
        from vstar.training.launch import launch_training

        return launch_training("sft", base_path, examples, out_dir, train, seed, dtype, execution, chat_template)
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(base_path)
    rows, lengths = sft_rows(sequence_format(tokenizer, chat_template, base_path), examples, train.max_length, setting)
    model = load_model(base_path, dtype=dtype)
    model.train()
    dataset = Dataset.from_list(rows)
    args = SFTConfig(
        completion_only_loss=True,
        packing=False,
        dataset_num_proc=None,
        **trainer_kwargs(train, out_dir, seed, len(dataset), dtype),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(train),
        callbacks=[ProgressBar("generator SFT").callback, checkpoint_callback()],
    )
    trainer.remove_callback(PrinterCallback)  # the progress bar shows the loss; details go to the log
    log.info("SFT on %d examples -> %s", len(dataset), out_dir)
    result = trainer.train(resume_from_checkpoint=last_checkpoint(out_dir))
    trainer.save_model(str(out_dir))
    tokens = sum(len(row["input_ids"]) for row in rows)
    summary = {
        "examples": len(dataset),
        **lengths,
        "steps": result.global_step,
        "train_tokens": int(tokens * train.epochs),
        **final_losses(trainer.state.log_history),
    }
    if trainer.is_world_process_zero():  # one writer when several processes train
        record_adapter_base(out_dir, base_path)
        tokenizer.save_pretrained(str(out_dir))
        (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
