"""Load any Hugging Face causal LM, or build the tiny embedded one."""

from vstar.models.load import load_model, load_tokenizer
from vstar.models.tiny import build_tiny_model

__all__ = ["build_tiny_model", "load_model", "load_tokenizer"]
