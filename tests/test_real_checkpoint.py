"""Training with a real checkpoint's shape: SmolLM2-135M's config (2 layers, random weights) and its
real tokenizer, through TRL's trainers and PEFT."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from vstar.config import GeneratorSection, VerifierSection
from vstar.models import load_model
from vstar.training.common import trainer_kwargs
from vstar.training.dpo import train_dpo
from vstar.training.sft import train_sft

EXAMPLES = [{"prompt": f"What is {a} + {b}?", "completion": f" {a} + {b} = {a + b}. The answer is {a + b}."}
            for a, b in ((2, 3), (4, 4), (7, 1), (6, 2))]
PAIRS = [{"prompt": e["prompt"], "chosen": e["completion"], "rejected": e["completion"].replace("answer is", "answer is 1")}
         for e in EXAMPLES]
LORA = {"method": "lora", "epochs": 1.0, "batch_size": 2, "learning_rate": 5e-2, "max_length": 128, "lora_r": 4}


def _logits(model, text_ids):
    with torch.no_grad():
        return model(torch.tensor([text_ids])).logits[0]


def test_a_lora_verifier_on_a_lora_generator_reloads_on_g_sft(smollm2_random, tmp_path):
    """V = G_SFT + DPO adapter, where G_SFT = G_base + SFT adapter; not G_base + DPO adapter."""
    from peft import PeftModel

    base = str(smollm2_random)
    run = tmp_path / "run"
    sft_summary = train_sft(base, EXAMPLES, run / "sft", GeneratorSection(**LORA), seed=0, chat_template="auto")
    assert sft_summary["examples"] == 4 and sft_summary["examples_too_long"] == 0
    train_dpo(str(run / "sft"), PAIRS, run / "verifier", VerifierSection(**LORA, beta=0.1), seed=0)
    adapter = json.loads((run / "verifier" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "../sft"  # moves with the run directory
    moved = tmp_path / "moved"
    shutil.move(str(run), moved)
    ids = list(range(100, 140))
    verifier = _logits(load_model(str(moved / "verifier")), ids)
    on_sft = PeftModel.from_pretrained(load_model(str(moved / "sft")), str(moved / "verifier")).merge_and_unload()
    on_base = PeftModel.from_pretrained(load_model(base), str(moved / "verifier")).merge_and_unload()
    assert (verifier - _logits(on_sft, ids)).abs().max() < 1e-4
    assert (verifier - _logits(on_base, ids)).abs().max() > 1e-2  # the SFT adapter matters here


def test_mixed_precision_follows_model_dtype(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the settings a GPU run would get
    train = GeneratorSection()
    assert not trainer_kwargs(train, tmp_path, 0, 10, "float32")["bf16"]
    assert trainer_kwargs(train, tmp_path, 0, 10, "bfloat16")["bf16"]
    assert trainer_kwargs(train, tmp_path, 0, 10, "float16")["fp16"]


def test_sft_summary_counts_examples_left_out_as_too_long(smollm2_random, tmp_path):
    long = {"prompt": "Tell me a long story. " * 20, "completion": " Once upon a time."}
    train = GeneratorSection(**{**LORA, "max_length": 60})
    summary = train_sft(str(smollm2_random), EXAMPLES + [long], tmp_path / "sft", train, seed=0)
    assert summary["examples"] == 4 and summary["examples_too_long"] == 1 and summary["longest_tokens"] > 60
    saved = json.loads((tmp_path / "sft" / "train_summary.json").read_text())
    assert saved["examples_too_long"] == 1
    with pytest.raises(Exception, match="generator.max_length=8: none of the 5 examples fit"):
        train_sft(str(smollm2_random), EXAMPLES + [long], tmp_path / "none", GeneratorSection(**{**LORA, "max_length": 8}),
                  seed=0)
