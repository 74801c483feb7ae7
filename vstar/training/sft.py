"""Generator training: SFT from G_base on prompt/completion pairs, loss on the completion only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from vstar.config import TrainSection
from vstar.models import load_model, load_tokenizer
from vstar.training.common import ProgressBar, final_losses, log, lora_config, trainer_kwargs


def train_sft(
    base_path: str,
    examples: Sequence[dict],
    out_dir: Path,
    train: TrainSection,
    seed: int,
    dtype: str = "float32",
) -> dict:
    """Fine-tune ``base_path`` on ``examples`` ({"prompt", "completion"}) and save to ``out_dir``.

    Returns a summary (examples, steps, first/last loss, tokens trained on).
    """
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(base_path)
    model = load_model(base_path, dtype=dtype)
    model.train()
    dataset = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    args = SFTConfig(
        completion_only_loss=True,
        packing=False,
        dataset_num_proc=None,
        **trainer_kwargs(train, out_dir, seed, len(dataset)),
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(train),
        callbacks=[ProgressBar("generator SFT").callback],
    )
    trainer.remove_callback(PrinterCallback)  # the progress bar shows the loss; details go to the log
    log.info("SFT on %d examples -> %s", len(dataset), out_dir)
    result = trainer.train()
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    summary = {
        "examples": len(dataset),
        "steps": result.global_step,
        "train_tokens": int(tokens * train.epochs),
        **final_losses(trainer.state.log_history),
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
