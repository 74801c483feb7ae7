"""ORM verifier (Cobbe et al. 2021): the LM with a scalar head, trained to predict correctness.

Initialised from G_SFT; the head reads the last token of prompt + completion (+ end token),
tokenized by ``SequenceFormat`` as for every other stage, and is trained with binary
cross-entropy on the checker's labels. Examples longer than ``max_length`` are left out and
counted, as in SFT and DPO. The score of a
candidate is the predicted probability that it is correct.

With ``lm_loss > 0`` the model also keeps its language-modelling loss on the completion
(weighted by ``lm_loss``), Cobbe et al.'s joint objective: the LM head stays attached while
training, and the result is saved as the same sequence-classification checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from vstar.config import TrainSection
from vstar.errors import VstarError
from vstar.models import load_tokenizer
from vstar.models.sequence import SequenceFormat, sequence_format
from vstar.training.common import ProgressBar, final_losses, log, trainer_kwargs
from vstar.training.data import length_report


def _encode(fmt: SequenceFormat, examples: Sequence[dict], max_length: int, lm_targets: bool = False
            ) -> tuple[list[dict], dict]:
    """Rows for the trainer, and the counts of ``length_report``."""
    rows, lengths = [], []
    for e in examples:
        ids, start = fmt.encode(e["prompt"], e["completion"], e.get("finished", True))
        lengths.append(len(ids))
        if len(ids) > max_length:
            continue
        row = {"input_ids": ids, "labels": [float(e["correct"])]}
        if lm_targets:  # next-token targets on the completion only
            row["lm_labels"] = [-100] * start + ids[start:]
        rows.append(row)
    return rows, length_report(len(rows), lengths, max_length, "verifier.max_length", "examples")


def train_orm(sft_path: str, examples: Sequence[dict], out_dir: Path, train: TrainSection, seed: int,
              lm_loss: float = 0.0, chat_template: str = "auto") -> dict:
    """Train on ``examples`` ({"prompt", "completion", "correct"}) and save the classifier to ``out_dir``.
    ``lm_loss``: weight of the LM loss on the completion added to the classification loss."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(sft_path)
    tokenizer.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(
        sft_path, num_labels=1, problem_type="multi_label_classification", dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    rows, lengths = _encode(sequence_format(tokenizer, chat_template, sft_path), examples, train.max_length,
                            lm_targets=lm_loss > 0)
    dataset = Dataset.from_list(rows)
    kwargs = trainer_kwargs(train, out_dir, seed, len(dataset))
    kwargs.pop("max_length")
    joint = None
    if lm_loss > 0:
        joint = joint_model(sft_path, _score_head(model), lm_loss)
        kwargs.update(save_strategy="no", remove_unused_columns=False)  # a plain module: no mid-run checkpoints
    trainer = Trainer(
        model=joint or model,
        args=TrainingArguments(**kwargs),
        train_dataset=dataset,
        data_collator=_pad_joint(tokenizer.pad_token_id) if joint else DataCollatorWithPadding(tokenizer),
        callbacks=[ProgressBar("ORM verifier").callback],
    )
    trainer.remove_callback(PrinterCallback)
    log.info("ORM on %d labeled samples%s -> %s", len(dataset), f" (+{lm_loss} x LM loss)" if joint else "", out_dir)
    result = trainer.train()
    if joint is not None:  # the trained body and head, into the sequence-classification model
        model.base_model.load_state_dict(joint.lm.base_model.state_dict())
        model.save_pretrained(str(out_dir))
    else:
        trainer.save_model(str(out_dir))
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(str(out_dir))
    summary = {
        "examples": len(dataset),
        **lengths,
        "positives": int(sum(row["labels"][0] for row in rows)),
        "steps": result.global_step,
        "lm_loss_weight": lm_loss,
        "train_tokens": int(sum(len(r["input_ids"]) for r in dataset) * train.epochs),
        **final_losses(trainer.state.log_history),
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _score_head(model):
    """The scalar head of a sequence-classification model (``score`` in Llama, Qwen, Mistral, GPT-2)."""
    head = getattr(model, "score", None)
    if head is None or getattr(head, "out_features", None) != 1:
        raise VstarError(f"baselines.orm_lm_loss: {type(model).__name__} has no 'score' head to train jointly; "
                         "set baselines.orm_lm_loss: 0 for this model.")
    return head


def joint_model(sft_path: str, head, weight: float):
    """The causal LM with the classifier's head on its last hidden state: BCE + weight x LM loss."""
    import torch
    from transformers import AutoModelForCausalLM

    class Joint(torch.nn.Module):
        def __init__(self, sft_path: str, head, weight: float):
            super().__init__()
            self.lm = AutoModelForCausalLM.from_pretrained(sft_path, dtype=torch.float32)
            self.head = head  # the same module object: training it trains the saved model's head
            self.weight = weight

        def forward(self, input_ids, attention_mask, labels, lm_labels):
            functional = torch.nn.functional
            hidden = self.lm.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            last = attention_mask.sum(dim=1) - 1  # right padding: the last real token, as the classifier reads
            logits = self.head(hidden[torch.arange(len(last)), last])
            correctness = functional.binary_cross_entropy_with_logits(logits.view(-1), labels.view(-1))
            token_logits = self.lm.get_output_embeddings()(hidden[:, :-1])
            language = functional.cross_entropy(token_logits.flatten(0, 1), lm_labels[:, 1:].flatten(), ignore_index=-100)
            return {"loss": correctness + self.weight * language, "logits": logits}

    return Joint(sft_path, head, weight)


def _pad_joint(pad_id: int):
    def collate(rows: list[dict]) -> dict:
        import torch

        width = max(len(r["input_ids"]) for r in rows)

        def pad(values, fill):
            return values + [fill] * (width - len(values))

        return {
            "input_ids": torch.tensor([pad(r["input_ids"], pad_id) for r in rows]),
            "attention_mask": torch.tensor([pad([1] * len(r["input_ids"]), 0) for r in rows]),
            "lm_labels": torch.tensor([pad(r["lm_labels"], -100) for r in rows]),
            "labels": torch.tensor([r["labels"] for r in rows], dtype=torch.float32),
        }

    return collate
