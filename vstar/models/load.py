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


def adapter_base_path(adapter_dir: str | Path) -> str | None:
    """The model a PEFT adapter folder was trained on (``base_model_name_or_path``), or None when the
    folder holds no adapter. A relative path is taken relative to the adapter's folder when it
    exists there (vstar records siblings in a run directory that way), else as given."""
    config_file = Path(adapter_dir) / "adapter_config.json"
    if not config_file.exists():
        return None
    try:
        base = json.loads(config_file.read_text())["base_model_name_or_path"]
        if not isinstance(base, str) or not base:
            raise TypeError("not a path")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VstarError(f"{config_file}: expected a PEFT adapter config with 'base_model_name_or_path' ({exc}).") from None
    near = Path(adapter_dir) / base
    return str(near.resolve()) if not Path(base).is_absolute() and near.exists() else base


def load_model(path: str, dtype: str = "float32", device: str | None = None):
    """A causal LM from ``path`` (a directory holding a full model or a PEFT adapter), in eval mode.

    An adapter is merged into its base model, which is loaded the same way: a base that is an
    adapter itself (a LoRA verifier on a LoRA G_SFT) is merged first.
    """
    import torch

    _check_model_dir(str(path))
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    base = adapter_base_path(path)
    try:
        if base is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(load_model(base, dtype), str(path)).merge_and_unload()
        else:
            from transformers import AutoModelForCausalLM

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
