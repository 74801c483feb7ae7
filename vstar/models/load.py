"""Load a causal LM and its tokenizer from a local directory or a hub id."""

from __future__ import annotations

from pathlib import Path

from vstar.errors import VstarError


def _check_model_dir(path: str) -> None:
    local = Path(path)
    looks_local = local.exists() or path.startswith((".", "/", "~")) or path.count("/") > 1
    if not looks_local:
        return  # a hub id: transformers resolves it (cache or network)
    if not local.is_dir():
        raise VstarError(f"model path '{path}': no such directory (expected a saved Hugging Face model).")
    if not (local / "config.json").exists():
        raise VstarError(
            f"model path '{path}': not a model directory (no config.json). Expected the output of "
            "save_pretrained, e.g. a run's sft/ or iter_1/generator/ folder."
        )


def load_tokenizer(path: str):
    """Tokenizer with left padding and a pad token (falls back to EOS, as is common)."""
    from transformers import AutoTokenizer

    _check_model_dir(str(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.eos_token is None:
        raise VstarError(
            f"tokenizer at '{path}' has no eos_token: set one (tokenizer.eos_token = ...) and save it "
            "again; vstar needs it to end completions."
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(path: str, dtype: str = "float32", device: str | None = None):
    """A causal LM from ``path`` (a directory holding a full model or a PEFT adapter), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    _check_model_dir(str(path))
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if (Path(path) / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
        model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
    if device:
        model.to(device)
    model.eval()
    return model
