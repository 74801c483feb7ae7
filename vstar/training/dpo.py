"""Verifier training: DPO initialised from G_SFT, with G_SFT as the frozen reference."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from vstar.config import ExecutionSection, VerifierSection
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
from vstar.training.data import dpo_rows


def train_dpo(
    sft_path: str,
    pairs: Sequence[dict],
    out_dir: Path,
    verifier: VerifierSection,
    seed: int,
    dtype: str = "float32",
    execution: ExecutionSection | None = None,
    chat_template: str = "auto",
) -> dict:
    """Train V on ``pairs`` ({"prompt", "chosen", "rejected"[, "chosen_finished", "rejected_finished"]})
    and save it to ``out_dir``. Pairs are tokenized by ``SequenceFormat`` (``chat_template`` is
    ``model.chat_template``), exactly as scoring tokenizes candidates.

    With ``execution.num_processes > 1`` the training runs under ``accelerate launch``.
    """
    if execution is not None and execution.num_processes > 1:
        from vstar.training.launch import launch_training

        return launch_training("dpo", sft_path, pairs, out_dir, verifier, seed, dtype, execution, chat_template)
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig

    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(sft_path)
    rows, lengths = dpo_rows(sequence_format(tokenizer, chat_template, sft_path), pairs, verifier.max_length,
                             "verifier.max_length")
    model = load_model(sft_path, dtype=dtype)
    model.train()
    peft = lora_config(verifier)
    # the reference is G_SFT itself; with LoRA, PEFT disables the adapter to get it
    ref_model = None if peft is not None else load_model(sft_path, dtype=dtype)
    dataset = Dataset.from_list(rows)
    args = DPOConfig(
        beta=verifier.beta,
        loss_type=["sigmoid"],
        # TRL caches precomputed reference log-probs of in-memory data in a per-process temp dir,
        # which the other processes of a multi-process run cannot read: compute them on the fly there
        precompute_ref_log_probs=int(os.environ.get("WORLD_SIZE", "1")) == 1,
        **trainer_kwargs(verifier, out_dir, seed, len(dataset), dtype),
    )
    trainer = _tokenized_dpo_trainer()(
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
    pair_tokens = sum(2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows)
    summary = {
        "pairs": len(dataset),
        **lengths,
        "steps": result.global_step,
        "beta": verifier.beta,
        "train_tokens": int(pair_tokens * verifier.epochs),
        "train_pair_accuracy_last": accuracies[-1] if accuracies else None,
        **final_losses(history),
    }
    if trainer.is_world_process_zero():  # one writer when several processes train
        record_adapter_base(out_dir, sft_path)  # V = G_SFT + this adapter, even when G_SFT is an adapter too
        tokenizer.save_pretrained(str(out_dir))
        (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _tokenized_dpo_trainer():
    """TRL's ``DPOTrainer`` taking the pairs as vstar tokenized them (``prompt_ids``, ``chosen_ids``,
    ``rejected_ids``): its own preparation would re-tokenize the texts, splitting prompt and
    completion where BPE merges them and adding special tokens of its choosing."""
    from trl import DPOTrainer

    class TokenizedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset

    return TokenizedDPOTrainer
