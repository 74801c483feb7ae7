"""Generator SFT (full and LoRA), loss on the completion only, and the tiny model's tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from vstar.config import TrainSection
from vstar.models import load_model, load_tokenizer
from vstar.models.tiny import TinyModelSpec, build_char_tokenizer, build_tiny_model
from vstar.scoring import completion_logprobs
from vstar.training.sft import train_sft

SPEC = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
EXAMPLES = [{"prompt": f"{a} {b} -> {a + b}\n", "completion": f"{a}+{b}={a + b}\n"} for a in range(1, 9) for b in range(1, 5)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("base"), SPEC, seed=0)


def test_char_tokenizer_round_trips_and_has_special_tokens():
    tok = build_char_tokenizer()
    text = "3 7 5 2 -> 19\n7+5=12\nThe answer is $1,000."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>" and tok.padding_side == "left"
    assert tok("a</s>", add_special_tokens=False)["input_ids"][-1] == tok.eos_token_id


@pytest.mark.parametrize("method", ["full", "lora"])
def test_sft_raises_completion_likelihood(base, tmp_path, method):
    prompts = [e["prompt"] for e in EXAMPLES]
    completions = [e["completion"] for e in EXAMPLES]
    before, _ = completion_logprobs(str(base), prompts, completions, [True] * len(prompts))
    rate = 5e-3 if method == "full" else 2e-2  # LoRA's low-rank updates want a larger step
    train = TrainSection(method=method, epochs=8, batch_size=16, learning_rate=rate, lora_r=8, lora_alpha=16)
    summary = train_sft(str(base), EXAMPLES, tmp_path / "out", train, seed=0)
    after, counts = completion_logprobs(str(tmp_path / "out"), prompts, completions, [True] * len(prompts))
    assert summary["last_loss"] < summary["first_loss"]
    assert sum(after) > sum(before) + 50  # nats over 32 examples
    assert counts[0] == len(completions[0]) + 1  # completion characters + EOS
    if method == "lora":
        assert (tmp_path / "out" / "adapter_config.json").exists()
        merged = load_model(str(tmp_path / "out"))  # the adapter is merged on load
        assert not any(n for n, _ in merged.named_parameters() if "lora" in n)


def test_loss_is_on_the_completion_only(base, tmp_path):
    """Training on prompts that never change the completion must not teach the prompt text."""
    from trl import SFTConfig, SFTTrainer
    from datasets import Dataset

    tokenizer = load_tokenizer(str(base))
    dataset = Dataset.from_list(EXAMPLES[:4])
    trainer = SFTTrainer(model=load_model(str(base)), args=SFTConfig(output_dir=str(tmp_path), use_cpu=True,
                         completion_only_loss=True, report_to="none", max_length=64), train_dataset=dataset,
                         processing_class=tokenizer)
    row = trainer.train_dataset[0]
    prompt_len = len(tokenizer(EXAMPLES[0]["prompt"], add_special_tokens=False)["input_ids"])
    labels = row["labels"]
    assert labels[:prompt_len] == [-100] * prompt_len  # no loss on the prompt
    assert labels[prompt_len:] == row["input_ids"][prompt_len:]  # loss on completion + EOS
    assert labels[-1] == tokenizer.eos_token_id


def test_one_step_run_still_learns(base, tmp_path):
    """Warm-up that would take every step (lr 0 throughout) is dropped: one optimizer step moves."""
    from vstar.training.common import trainer_kwargs

    train = TrainSection(epochs=1, batch_size=64, learning_rate=1e-2, max_length=64, max_steps=0)
    assert trainer_kwargs(train, tmp_path, 0, num_examples=10)["warmup_steps"] == 0
    assert trainer_kwargs(train, tmp_path, 0, num_examples=64 * 40)["warmup_steps"] == train.warmup_ratio
    summary = train_sft(str(base), EXAMPLES[:10], tmp_path / "one_step", train, seed=0)
    assert summary["steps"] == 1
    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(tmp_path / "one_step" / "model.safetensors"))
    assert any(not torch.equal(before[name], after[name]) for name in before)
