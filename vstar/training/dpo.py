"""Verifier training: DPO initialised from G_SFT, with G_SFT as the frozen reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from vstar.config import VerifierSection
from vstar.models import load_model, load_tokenizer
from vstar.training.common import ProgressBar, final_losses, log, lora_config, trainer_kwargs


def train_dpo(
    sft_path: str,
    pairs: Sequence[dict],
    out_dir: Path,
    verifier: VerifierSection,
    seed: int,
    dtype: str = "float32",
) -> dict:
    """Train V on ``pairs`` ({"prompt", "chosen", "rejected"}) and save it to ``out_dir``."""
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
        precompute_ref_log_probs=True,
        **trainer_kwargs(verifier, out_dir, seed, len(dataset)),
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[ProgressBar("verifier DPO").callback],
    )
    trainer.remove_callback(PrinterCallback)  # the progress bar shows the loss; details go to the log
    log.info("DPO on %d pairs -> %s", len(dataset), out_dir)
    result = trainer.train()
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
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
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _pair_tokens(tokenizer, pairs: Sequence[dict]) -> int:
    """Tokens in the chosen and rejected sequences (prompt included in each)."""
    texts = [p["prompt"] + p[side] for p in pairs for side in ("chosen", "rejected")]
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) if texts else 0
