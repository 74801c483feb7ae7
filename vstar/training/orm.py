"""ORM verifier (Cobbe et al. 2021): the LM with a scalar head, trained to predict correctness.

Initialised from G_SFT; the head reads the last token of prompt + completion (+EOS)
and is trained with binary cross-entropy on the checker's labels. The score of a
candidate is the predicted probability that it is correct.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from vstar.config import TrainSection
from vstar.models import load_tokenizer
from vstar.training.common import ProgressBar, final_losses, log, trainer_kwargs


def _encode(tokenizer, examples: Sequence[dict], max_length: int) -> list[dict]:
    rows = []
    for e in examples:
        ids = tokenizer(e["prompt"] + e["completion"], add_special_tokens=False)["input_ids"]
        ids = (ids + [tokenizer.eos_token_id])[-max_length:]  # keep the end: the head reads the last token
        rows.append({"input_ids": ids, "labels": [float(e["correct"])]})
    return rows


def train_orm(sft_path: str, examples: Sequence[dict], out_dir: Path, train: TrainSection, seed: int) -> dict:
    """Train on ``examples`` ({"prompt", "completion", "correct"}) and save the classifier to ``out_dir``."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(sft_path)
    tokenizer.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(
        sft_path, num_labels=1, problem_type="multi_label_classification", dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    dataset = Dataset.from_list(_encode(tokenizer, examples, train.max_length))
    kwargs = trainer_kwargs(train, out_dir, seed, len(dataset))
    kwargs.pop("max_length")
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**kwargs),
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[ProgressBar("ORM verifier").callback],
    )
    trainer.remove_callback(PrinterCallback)
    log.info("ORM on %d labeled samples -> %s", len(dataset), out_dir)
    result = trainer.train()
    trainer.save_model(str(out_dir))
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(str(out_dir))
    summary = {
        "examples": len(dataset),
        "positives": int(sum(e["correct"] for e in examples)),
        "steps": result.global_step,
        "train_tokens": int(sum(len(r["input_ids"]) for r in dataset) * train.epochs),
        **final_losses(trainer.state.log_history),
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
