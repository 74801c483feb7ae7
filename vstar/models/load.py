"""Load a causal LM and its tokenizer from a local directory or a hub id."""

from __future__ import annotations

import json
from pathlib import Path

from vstar.errors import VstarError


def _looks_local(path: str) -> bool:
    return Path(path).exists() or path.startswith((".", "/", "~")) or path.count("/") > 1


def _check_model_dir(path: str, field: str = "model path") -> None:
    local = Path(path).expanduser()
    if not _looks_local(path):
        return  # a hub id: transformers resolves it (cache or network)
    if not local.is_dir():
        raise VstarError(f"{field} '{path}': no such directory (expected a saved Hugging Face model).")
    if not (local / "config.json").exists() and not (local / "adapter_config.json").exists():
        raise VstarError(
            f"{field} '{path}': not a model directory (no config.json). Expected the output of "
            "save_pretrained, e.g. a run's sft/ or iter_1/generator/ folder."
        )


def check_model(path: str, field: str = "model.base") -> None:
    """Fail early, naming ``field``, if a local model path is missing, not a model, or has an
    unusable tokenizer. Hub ids are left to transformers."""
    _check_model_dir(path, field)
    if not _looks_local(path):
        return
    folder = Path(path).expanduser()
    if not any(any(folder.glob(pattern)) for pattern in WEIGHT_FILES):
        raise VstarError(
            f"{field} '{path}': no weights in the folder (expected one of {', '.join(WEIGHT_FILES)}, as "
            "save_pretrained writes)."
        )
    load_tokenizer(path)


#: file names that hold a model's (or adapter's) weights
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")


def load_tokenizer(path: str):
    """Tokenizer with left padding, an EOS token and a pad token.

    A missing EOS token is taken from the model's config (``eos_token_id``); a missing pad
    token falls back to EOS, as is common.
    """
    from transformers import AutoTokenizer

    _check_model_dir(str(path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise VstarError(
            f"model path '{path}': cannot load a tokenizer ({_first_line(exc)}). Save one beside the model "
            "with tokenizer.save_pretrained(path)."
        ) from None
    if tokenizer.eos_token is None:
        eos_id = _config_eos_id(path)
        if eos_id is None or eos_id >= len(tokenizer):
            raise VstarError(
                f"tokenizer at '{path}' has no eos_token and the model config names no eos_token_id: set one "
                "(tokenizer.eos_token = '</s>', or the token your model ends text with) and save it with "
                "tokenizer.save_pretrained(path); vstar needs it to end completions."
            )
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_id)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _config_eos_id(path: str) -> int | None:
    """``eos_token_id`` from the model's config.json (the first, if a list), if local and set."""
    config_file = Path(path).expanduser() / "config.json"
    try:
        value = json.loads(config_file.read_text()).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return None
    value = value[0] if isinstance(value, list) and value else value
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def load_model(path: str, dtype: str = "float32", device: str | None = None):
    """A causal LM from ``path`` (a directory holding a full model or a PEFT adapter), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    _check_model_dir(str(path))
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    try:
        if (Path(path) / "adapter_config.json").exists():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
            model = model.merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise VstarError(
            f"model path '{path}': cannot load a causal LM ({_first_line(exc)}). Expected a folder written by "
            "save_pretrained (config.json and the weights), or a hub id."
        ) from exc
    if device:
        model.to(device)
    model.eval()
    return model
