"""A tiny end-to-end run on a real checkpoint's shape: SmolLM2's config (2 layers, random weights),
its BPE tokenizer and chat template, LoRA generator and LoRA verifier (as configs/gsm8k_llama_8gpu.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from vstar.cli import main
from vstar.rundir import read_jsonl

MICRO = Path(__file__).resolve().parents[1] / "configs" / "micro.yaml"


@pytest.fixture(scope="module")
def real_shape_run(smollm2_random, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "real_shape"
    overrides = [
        f"model.base={smollm2_random}", "task.options.n_sft=12", "task.options.n_query=4", "task.options.n_test=4",
        "generator.method=lora", "generator.lora_r=4", "generator.epochs=1", "generator.batch_size=4",
        "generator.learning_rate=0.01", "verifier.method=lora", "verifier.lora_r=4", "verifier.batch_size=4",
        "verifier.beta=0.1", "verifier.learning_rate=0.01", "verifier.max_pairs_per_problem=1", "sampling.k=2", "sampling.max_new_tokens=12",
        "eval.n_candidates=2", "eval.table_k=2",
    ]
    args = ["run", "--config", str(MICRO), "--run-dir", str(run_dir)]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 0
    return run_dir


def test_lora_stages_write_adapters_that_moved(real_shape_run):
    for folder in ("sft", "iter_1/generator", "verifier"):
        weights = load_file(str(real_shape_run / folder / "adapter_model.safetensors"))
        lora_b = [tensor for name, tensor in weights.items() if "lora_B" in name]
        assert lora_b and any(tensor.abs().max() > 0 for tensor in lora_b), folder  # B starts at zero
    adapter = json.loads((real_shape_run / "verifier" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "../sft"


def test_prompts_went_through_the_chat_template(real_shape_run):
    config = (real_shape_run / "config.yaml").read_text()
    assert "chat_template: auto" in config
    samples = read_jsonl(real_shape_run / "iter_1" / "samples.jsonl")
    assert len(samples) == (12 + 4) * 2
    assert all("<|im_start|>" not in s["completion"] and s["completion"] == s["completion"].rstrip() for s in samples)


def test_metrics_are_sane(real_shape_run):
    metrics = json.loads((real_shape_run / "eval" / "metrics.json").read_text())
    assert metrics["n_problems"] == 4
    for name, points in metrics["curves"].items():
        for point in points.values():
            assert 0.0 <= point["lo"] <= point["mean"] <= point["hi"] <= 1.0, name
    summary = json.loads((real_shape_run / "verifier" / "summary.json").read_text())
    assert summary["pairs_too_long"] == 0 and summary["pairs"] > 0
    assert 0.0 <= summary["heldout"]["accuracy_logp_sum"] <= 1.0
