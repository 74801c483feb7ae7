"""A Llama-2-style tokenizer for tests, trained here on a few sentences.

It behaves as Llama-2's and Mistral's sentencepiece tokenizers do where vstar must get it
right: it adds a BOS token, prefixes the first word with '▁' (a space), falls back to bytes
for unknown characters, and its decoder strips the first space of a decoded text.
"""

from __future__ import annotations

import json

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

CORPUS = [
    "Question: what is 3 + 4?\nAnswer: The answer is 7.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "The answer is 72.\nQuestion: how many apples are left?\nAnswer: 18 apples are left.",
    "def add(a, b):\n    return a + b\n",
]


def llama2_style_tokenizer(vocab_size: int = 400):
    from transformers import LlamaTokenizer

    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    backend = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    backend.train_from_iterator(CORPUS * 20, trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return LlamaTokenizer(vocab=model["vocab"], merges=merges, add_bos_token=True)
