"""Shared fixtures: paths to the repository and the shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct as a checkpoint folder (converted from its GGUF file on first use,
    ~25 s; then cached in $VSTAR_CACHE or ~/.cache/vstar). ``make test`` installs the package."""
    from vstar.models.pretrained import converted_checkpoint

    return converted_checkpoint("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def smollm2_random(smollm2, tmp_path_factory) -> Path:
    """A 2-layer Llama with SmolLM2's config (its vocabulary, widths, tied embeddings), random
    weights, and SmolLM2's real tokenizer, chat template and generation config: the real
    checkpoint's code paths at a fraction of its cost."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig, LlamaForCausalLM

    config = AutoConfig.from_pretrained(smollm2)
    config.num_hidden_layers = 2
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("smollm2_random")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(smollm2).save_pretrained(folder)
    GenerationConfig.from_pretrained(smollm2).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory) -> Path:
    """One finished micro run (configs/micro.yaml, ~1-3 min on 2 CPU cores) through the real CLI,
    shared by every test file that reads a run. Tests must not change what it holds."""
    from vstar.cli import main

    run_dir = tmp_path_factory.mktemp("runs") / "micro"
    assert main(["run", "--config", str(REPO / "configs" / "micro.yaml"), "--run-dir", str(run_dir)]) == 0
    return run_dir


@pytest.fixture(scope="session")
def micro_verifier(micro_run):
    """``vstar.serve.Verifier`` of the session's micro run (models load on first use, then stay)."""
    from vstar.serve import Verifier

    verifier = Verifier.from_run(micro_run)
    yield verifier
    verifier.close()
