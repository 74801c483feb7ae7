"""Verifier training: DPO initialised from G_SFT, with G_SFT as the frozen reference."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from vstar.config import ExecutionSection, VerifierSection
from vstar.models import load_model, load_tokenizer
from vstar.training.common import (
    ProgressBar,
    checkpoint_callback,
    final_losses,
    last_checkpoint,
    log,
    lora_config,
    trainer_kwargs,
)


def train_dpo(
    sft_path: str,
    pairs: Sequence[dict],
    out_dir: Path,
    verifier: VerifierSection,
    seed: int,
    dtype: str = "float32",
    execution: ExecutionSection | None = None,
) -> dict:
    """Train V on ``pairs`` ({"prompt", "chosen", "rejected"}) and save it to ``out_dir``.

    With ``execution.num_processes > 1`` the training runs under ``accelerate launch``.
    """
    if execution is not None and execution.num_processes > 1:
        from vstar.training.launch import launch_training

        return launch_training("dpo", sft_path, pairs, out_dir, verifier, seed, dtype, execution)
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(sft_path)
    model = load_model(sft_path, dtype=dtype)
    model.train()
    peft = lora_config(verifier)
    # the reference is G_SFT itself; with LoRA, PEFT disables the adapter to get it
    ref_model = None if peft is not None else load_model(sft_path, dtype=dtype)
    dataset = Dataset.from_list(
        [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]
    )
    args = DPOConfig(
        beta=verifier.beta,
        loss_type=["sigmoid"],
        # TRL caches precomputed reference log-probs of in-memory data in a per-process temp dir,
        # which the other processes of a multi-process run cannot read: compute them on the fly there
        precompute_ref_log_probs=int(os.environ.get("WORLD_SIZE", "1")) == 1,
        **trainer_kwargs(verifier, out_dir, seed, len(dataset)),
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[ProgressBar("verifier DPO").callback, checkpoint_callback()],
    )
    trainer.remove_callback(PrinterCallback)  # the progress bar shows the loss; details go to the log
    log.info("DPO on %d pairs -> %s", len(dataset), out_dir)
    result = trainer.train(resume_from_checkpoint=last_checkpoint(out_dir))
    trainer.save_model(str(out_dir))
    history = trainer.state.log_history
    accuracies = [e["rewards/accuracies"] for e in history if "rewards/accuracies" in e]
    summary = {
        "pairs": len(dataset),
        "steps": result.global_step,
        "beta": verifier.beta,
        "train_tokens": int(_pair_tokens(tokenizer, pairs) * verifier.epochs),
        "train_pair_accuracy_last": accuracies[-1] if accuracies else None,
        **final_losses(history),
    }
    if trainer.is_world_process_zero():  # one writer when several processes train
        tokenizer.save_pretrained(str(out_dir))
        (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _pair_tokens(tokenizer, pairs: Sequence[dict]) -> int:
    """Tokens in the chosen and rejected sequences (prompt included in each)."""
    texts = [p["prompt"] + p[side] for p in pairs for side in ("chosen", "rejected")]
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else 0
