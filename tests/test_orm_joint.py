"""The ORM with Cobbe et al.'s joint objective (baselines.orm_lm_loss > 0) on a tiny model."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from vstar.config import TrainSection
from vstar.models.tiny import TinyModelSpec, build_tiny_model
from vstar.scoring.classifiers import orm_probabilities
from vstar.training.orm import _encode, train_orm
from vstar.models import load_tokenizer
from vstar.models.sequence import sequence_format

SPEC = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
# worked sums (correct) and a give-up answer (incorrect): a signal a tiny model learns in seconds
EXAMPLES = [{"prompt": f"{a} {b} ->", "completion": text, "correct": correct}
            for a in range(1, 9) for b in range(1, 5)
            for text, correct in ((f"{a}+{b}={a + b}\n", True), ("no idea\n", False))]


def test_lm_targets_cover_the_completion_only(tmp_path):
    base = build_tiny_model(tmp_path / "base", SPEC, seed=0)
    tokenizer = load_tokenizer(str(base))
    (row,), counts = _encode(sequence_format(tokenizer), [{"prompt": "1 2 ->", "completion": "1+2=3\n", "correct": True}],
                             64, lm_targets=True)
    assert counts == {"examples_too_long": 0, "longest_tokens": len(row["input_ids"])}
    assert len(row["input_ids"]) == len(row["lm_labels"]) == len("1 2 ->1+2=3\n") + 1
    assert row["lm_labels"][:6] == [-100] * 6 and row["lm_labels"][6:] == row["input_ids"][6:]
    assert row["labels"] == [1.0]


def test_joint_orm_learns_correctness_and_saves_a_classifier(tmp_path):
    base = build_tiny_model(tmp_path / "base", SPEC, seed=0)
    train = TrainSection(epochs=10, batch_size=16, learning_rate=3e-3, max_length=64)
    summary = train_orm(str(base), EXAMPLES, tmp_path / "orm", train, seed=0, lm_loss=0.5)
    assert summary["lm_loss_weight"] == 0.5 and summary["last_loss"] < summary["first_loss"]
    assert summary["first_loss"] > 1.5  # ~0.69 of correctness loss + 0.5 x ~4.6 nats/token of LM loss
    saved = load_file(str(tmp_path / "orm" / "model.safetensors"))
    start = load_file(str(base / "model.safetensors"))
    assert "score.weight" in saved
    assert any(not torch.equal(saved[name], start[name]) for name in start if name in saved)  # the body trained too
    probs = orm_probabilities(str(tmp_path / "orm"), [e["prompt"] for e in EXAMPLES], [e["completion"] for e in EXAMPLES])
    right = [p for p, e in zip(probs, EXAMPLES) if e["correct"]]
    wrong = [p for p, e in zip(probs, EXAMPLES) if not e["correct"]]
    assert sum(right) / len(right) > sum(wrong) / len(wrong) + 0.2
    assert json.loads((tmp_path / "orm" / "train_summary.json").read_text())["examples"] == len(EXAMPLES)
