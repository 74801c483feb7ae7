"""Model inputs for batches of token-id rows: left padding, and the position-range check."""

from __future__ import annotations

from typing import Sequence

import torch

from vstar.errors import VstarError


def pad_left(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of ``rows`` left-padded to one width."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            ids[index, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[index, width - len(row):] = 1
    return ids, mask


def check_positions(model, longest: int, what: str) -> None:
    """Fail clearly when sequences would run past the model's position range."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and longest > limit:
        raise VstarError(
            f"{what}: {longest} tokens, more than the model's max_position_embeddings ({limit}). Shorten the prompts "
            "(task options such as few_shot) or lower sampling.max_new_tokens."
        )
