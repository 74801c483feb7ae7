"""The one tokenization of prompt + completion that every stage uses.

SFT, DPO, the ORM, sampling and scoring all turn a (prompt, completion) pair into token
ids here, so the model is trained on exactly the sequence it is later sampled and scored
on. The rules:

1. **Prompt ids.** The prompt text (passed through the tokenizer's chat template when chat
   is on, with the generation prompt appended) is encoded once. Without a chat template the
   tokenizer adds its own special tokens (a BOS for Llama/Mistral-style tokenizers), as
   the model saw in pre-training; a chat template writes its own, so none are added then.
   A trailing EOS that some tokenizers append is dropped: the completion follows.
2. **Completion ids.** The completion is encoded as a *continuation*: as if it followed a
   special token, so a sentencepiece-style tokenizer does not prefix it with a space, and
   then the **end token** if the completion finished (the chat template's end-of-turn token
   when chat is on, else EOS).
3. **Sequence = prompt ids + completion ids**, concatenated. BPE never merges across the
   boundary, so the completion starts at the same token in every stage.
4. **Decoding** sampled ids is the inverse of rule 2: they are decoded after a special
   token and that token's text is removed, so a leading space survives (Llama-2/Mistral
   decoders strip the first space of a decoded text) and prompt + completion reproduces
   the text the model wrote.
5. **Stopping.** Generation ends at any of: the EOS ids of the checkpoint's generation
   config (a list, for some models), the tokenizer's EOS, the end token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vstar.errors import VstarError

CHAT_TEMPLATE_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class SequenceFormat:
    """How prompts and completions become token ids for one tokenizer (see the module docstring)."""

    tokenizer: Any
    chat: bool  # prompts go through the tokenizer's chat template
    end_id: int  # appended to a finished completion
    stop_ids: tuple[int, ...]  # any of these ends generation
    anchor_id: int  # a special token completions are encoded and decoded after (rule 2, 4)

    def prompt_text(self, prompt: str) -> str:
        """The text the model is conditioned on: the prompt, or the chat template around it."""
        if not self.chat:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, prompt: str) -> list[int]:
        text = self.prompt_text(prompt)
        ids = list(self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"])
        if ids and ids[-1] == self.tokenizer.eos_token_id and not text.endswith(self.tokenizer.eos_token):
            ids.pop()  # an EOS the tokenizer's post-processor appended: the completion follows
        return ids

    def completion_ids(self, completion: str, finished: bool = True) -> list[int]:
        """The completion's ids as a continuation, then the end token when ``finished``."""
        anchor = self.tokenizer.convert_ids_to_tokens(self.anchor_id)
        ids = self.tokenizer(anchor + completion, add_special_tokens=False)["input_ids"]
        if ids[:1] == [self.anchor_id]:
            ids = ids[1:]
        else:  # the anchor did not stay one token: plain encoding
            ids = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        return list(ids) + ([self.end_id] if finished else [])

    def encode(self, prompt: str, completion: str, finished: bool = True) -> tuple[list[int], int]:
        """(prompt + completion ids, index of the first completion token)."""
        prompt_ids = self.prompt_ids(prompt)
        return prompt_ids + self.completion_ids(completion, finished), len(prompt_ids)

    def decode_completion(self, ids: Sequence[int]) -> str:
        """Text of generated ids (without the stop token), decoded as a continuation."""
        head = self.tokenizer.decode([self.anchor_id], skip_special_tokens=False)
        text = self.tokenizer.decode([self.anchor_id, *ids], skip_special_tokens=False)
        if text.startswith(head):
            return text[len(head):]
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


def use_chat_template(tokenizer, setting: str) -> bool:
    """Whether prompts go through the chat template: ``auto`` = when the tokenizer has one."""
    if setting not in CHAT_TEMPLATE_CHOICES:
        raise VstarError(f"model.chat_template: expected one of {', '.join(CHAT_TEMPLATE_CHOICES)}, got {setting!r}.")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if setting == "on" and not has_template:
        raise VstarError(
            f"model.chat_template: on, but the tokenizer of '{tokenizer.name_or_path}' has no chat template; "
            "use auto or off, or save a tokenizer with one."
        )
    return has_template if setting == "auto" else setting == "on"


def turn_end_id(tokenizer) -> int | None:
    """The special token the chat template puts after an assistant message (e.g. ``<|im_end|>``,
    ``<|eot_id|>``), or None when it writes none."""
    marker = "vstar-completion-marker"
    messages = [{"role": "user", "content": "question"}, {"role": "assistant", "content": marker}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # a template that refuses this conversation (e.g. wants a system turn)
        return None
    if marker not in text:
        return None
    after = text[text.rindex(marker) + len(marker):]
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    for token_id in tokenizer(after, add_special_tokens=False)["input_ids"]:
        if token_id in special:
            return token_id
    return None


def generation_eos_ids(model_path: str | Path) -> list[int]:
    """EOS ids in the checkpoint's ``generation_config.json`` (or ``config.json``), as a list."""
    ids: list[int] = []
    for name in ("generation_config.json", "config.json"):
        try:
            value = json.loads((Path(model_path) / name).read_text()).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int) and not isinstance(item, bool) and item not in ids:
                ids.append(item)
    return ids


def sequence_format(tokenizer, chat_template: str = "auto", model_path: str | Path | None = None) -> SequenceFormat:
    """The ``SequenceFormat`` of ``tokenizer`` under the ``model.chat_template`` setting; the
    checkpoint at ``model_path`` (if given) adds its generation config's EOS ids to the stop ids."""
    chat = use_chat_template(tokenizer, chat_template)
    eos = tokenizer.eos_token_id
    end = turn_end_id(tokenizer) if chat else None
    end = eos if end is None else end
    stops = [eos, end, *(generation_eos_ids(model_path) if model_path is not None else [])]
    return SequenceFormat(
        tokenizer=tokenizer,
        chat=chat,
        end_id=end,
        stop_ids=tuple(dict.fromkeys(i for i in stops if i is not None)),
        anchor_id=eos,
    )


def load_format(model_path: str, chat_template: str = "auto") -> SequenceFormat:
    """``sequence_format`` of the tokenizer saved with ``model_path``."""
    from vstar.models.load import load_tokenizer

    return sequence_format(load_tokenizer(model_path), chat_template, model_path)
