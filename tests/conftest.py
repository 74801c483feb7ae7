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
