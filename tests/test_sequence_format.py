"""One tokenization of prompt + completion for SFT, DPO, sampling and scoring (vstar.models.sequence).

Real tokenizers: SmolLM2-135M-Instruct's (byte-level BPE, chat template, pad = EOS) and a
Llama-2-style sentencepiece tokenizer trained here (BOS, '▁' prefix, a decoder that strips
the first space).
"""

from __future__ import annotations

import json

import pytest
import torch

from llama2_tokenizer import llama2_style_tokenizer
from vstar.errors import VstarError
from vstar.models import load_model, load_tokenizer
from vstar.models.sequence import sequence_format, turn_end_id
from vstar.models.tiny import build_char_tokenizer
from vstar.sampling.base import SamplingParams, end_completion
from vstar.sampling.hf import TransformersSampler, completion_from_ids, sampling_generation_config
from vstar.scoring.logprobs import completion_logprobs, encode_all, token_batches
from vstar.training.data import dpo_rows, sft_rows

TEXTS = [" The answer is 7.", "The", "\nQuestion", "  two spaces", " é unicode 72", "18 apples\n\n"]


@pytest.fixture(scope="module")
def llama2_model(tmp_path_factory):
    """A tiny random Llama with the Llama-2-style tokenizer (it adds BOS)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = llama2_style_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("llama2_tiny")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _stage_ids(fmt, prompt: str, completion: str) -> dict[str, list[int]]:
    """The ids SFT, DPO and scoring build for one finished (prompt, completion)."""
    (sft,), _ = sft_rows(fmt, [{"prompt": prompt, "completion": completion}], 10_000, "generator.max_length")
    (dpo,), _ = dpo_rows(fmt, [{"prompt": prompt, "chosen": completion, "rejected": "x"}], 10_000, "verifier.max_length")
    ((scored, start),) = encode_all(fmt, [prompt], [completion], [True])
    assert sft["completion_mask"].index(1) == len(dpo["prompt_ids"]) == start
    return {"sft": sft["input_ids"], "dpo": dpo["prompt_ids"] + dpo["chosen_ids"], "scoring": scored}


def test_every_stage_builds_the_same_ids_with_the_bos_the_tokenizer_adds():
    tokenizer = llama2_style_tokenizer()
    fmt = sequence_format(tokenizer)
    ids = _stage_ids(fmt, "Question: what is 3 + 4?\nAnswer:", " The answer is 7.")
    assert ids["sft"] == ids["dpo"] == ids["scoring"]
    assert ids["sft"][0] == tokenizer.bos_token_id and ids["sft"][-1] == tokenizer.eos_token_id
    assert ids["sft"].count(tokenizer.bos_token_id) == 1


def test_sampling_and_scoring_condition_on_the_bos(llama2_model):
    """Greedy samples equal generate() on [BOS] + prompt, and scores equal log p under [BOS] + prompt."""
    tokenizer = load_tokenizer(str(llama2_model))
    model = load_model(str(llama2_model))
    prompt = "Question: what is 3 + 4?\nAnswer:"
    with_bos = tokenizer(prompt, return_tensors="pt")["input_ids"]
    assert with_bos[0, 0].item() == tokenizer.bos_token_id
    expected = model.generate(with_bos, do_sample=False, max_new_tokens=12, top_k=None,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    expected_ids = expected[0, with_bos.shape[1]:].tolist()
    sampler = TransformersSampler(str(llama2_model), batch_size=4)
    (completion,) = sampler.generate([prompt], SamplingParams(n=1, temperature=0, max_new_tokens=12))[0]
    fmt = sequence_format(tokenizer)
    assert completion.text == end_completion(fmt.decode_completion(
        [t for t in expected_ids if t != tokenizer.eos_token_id]), ())[0]
    text = " The answer is 7."
    (score,), (count,) = completion_logprobs(str(llama2_model), [prompt], [text], [True])
    ids = with_bos[0].tolist() + fmt.completion_ids(text)
    logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
    targets = torch.tensor(ids[1:])
    manual = logp[torch.arange(len(targets)), targets][with_bos.shape[1] - 1:].sum().item()
    assert count == len(fmt.completion_ids(text)) and score == pytest.approx(manual, abs=1e-4)


@pytest.mark.parametrize("which", ["llama2", "smollm2"])
def test_completions_round_trip_through_decoding(which, smollm2):
    tokenizer = llama2_style_tokenizer() if which == "llama2" else load_tokenizer(str(smollm2))
    fmt = sequence_format(tokenizer, "off")
    for text in TEXTS:
        assert fmt.decode_completion(fmt.completion_ids(text, finished=False)) == text


def test_a_sampled_leading_space_survives_decoding():
    """Llama-2's decoder strips a decoded text's first space: ' The answer' must not come back as 'The answer'."""
    tokenizer = llama2_style_tokenizer()
    fmt = sequence_format(tokenizer)
    generated = tokenizer("Answer: The answer", add_special_tokens=False)["input_ids"][len(fmt.prompt_ids("Answer:")) - 1:]
    assert tokenizer.decode(generated) == "The answer"  # the tokenizer's own decode loses the space
    completion = completion_from_ids(fmt, generated + [tokenizer.eos_token_id, 5, 6], stop=())
    assert completion.text == " The answer" and completion.finished and completion.num_tokens == len(generated) + 1


def test_the_completion_starts_at_the_same_token_where_bpe_would_merge_across_the_boundary(smollm2):
    tokenizer = load_tokenizer(str(smollm2))
    prompt, completion = "Answer: ", "eighteen apples"
    joint = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    alone = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert joint[: len(alone)] != alone  # the space merges into the word: TRL's split would differ
    fmt = sequence_format(tokenizer, "off")
    ids = _stage_ids(fmt, prompt, completion)
    assert ids["sft"] == ids["dpo"] == ids["scoring"] == alone + fmt.completion_ids(completion)


def test_chat_template_formats_prompts_and_ends_completions_with_the_end_of_turn_token(smollm2):
    tokenizer = load_tokenizer(str(smollm2))
    chat = sequence_format(tokenizer, "auto")
    assert chat.chat and chat.end_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    text = chat.prompt_text("What is 2+3?")
    assert text.endswith("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n")
    ids = _stage_ids(chat, "What is 2+3?", "5")
    assert ids["sft"] == ids["dpo"] == ids["scoring"]
    assert tokenizer.decode(ids["sft"]) == text + "5<|im_end|>"
    plain = sequence_format(tokenizer, "off")
    assert not plain.chat and plain.prompt_text("What is 2+3?") == "What is 2+3?"
    with pytest.raises(VstarError, match="has no chat template"):
        sequence_format(build_char_tokenizer(), "on")
    assert not sequence_format(build_char_tokenizer(), "auto").chat


def test_the_end_of_turn_token_is_found_when_it_is_not_eos(smollm2):
    """A Llama-3-style template closes a turn with its own token; generation must stop at it too."""
    tokenizer = load_tokenizer(str(smollm2))
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>"
                               "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert end != tokenizer.eos_token_id and turn_end_id(tokenizer) == end
    fmt = sequence_format(tokenizer, "on")
    assert fmt.end_id == end and set(fmt.stop_ids) >= {end, tokenizer.eos_token_id}


def test_gold_solutions_and_samples_end_the_same_way():
    gold = " Natalia sold 48/2 = 24 clips in May.\nThe answer is 72."
    sampled = gold + "\n\nQuestion: Weng earns $12"
    assert end_completion(sampled, ("\nQuestion:",)) == (gold, True)
    assert end_completion("def f():\n    return 1\n[DONE]\n\n", ("[DONE]",)) == ("def f():\n    return 1", True)
    assert end_completion("1+2=3\n3+4=7\n", ()) == ("1+2=3\n3+4=7", False)


def _copy_with_generation_config(source, folder, settings: dict):
    folder.mkdir()
    for item in source.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    (folder / "generation_config.json").write_text(json.dumps(settings))
    return folder


def test_generation_stops_at_every_eos_of_the_checkpoint(llama2_model, tmp_path):
    eos = load_tokenizer(str(llama2_model)).eos_token_id
    folder = _copy_with_generation_config(llama2_model, tmp_path / "model", {"eos_token_id": [eos, 7]})
    sampler = TransformersSampler(str(folder), batch_size=4)
    assert set(sampler.format.stop_ids) == {eos, 7}
    config = sampling_generation_config(SamplingParams(temperature=0.7, stop=("\nQ",)), sampler.format)
    assert config.eos_token_id == [eos, 7] and config.stop_strings == ["\nQ"]
    assert config.top_k == 0 and config.repetition_penalty == 1.0  # not transformers' top-50 default
    cut = completion_from_ids(sampler.format, [300, 301, 7, 302], stop=())
    assert cut.finished and cut.num_tokens == 3


def test_samples_ignore_the_checkpoints_own_sampling_settings(llama2_model, tmp_path):
    """A repetition penalty, top-k or n-gram ban in generation_config.json would change the distribution."""
    eos = load_tokenizer(str(llama2_model)).eos_token_id
    settings = {"eos_token_id": eos, "repetition_penalty": 3.0, "top_k": 2, "no_repeat_ngram_size": 1,
                "suppress_tokens": list(range(3, 300))}
    folder = _copy_with_generation_config(llama2_model, tmp_path / "model", settings)
    prompt = "Question: what is 3 + 4?\nAnswer:"
    params = SamplingParams(n=1, temperature=1.0, max_new_tokens=16, seed=0)
    (completion,) = TransformersSampler(str(folder), batch_size=4).generate([prompt], params)[0]
    (reference,) = TransformersSampler(str(llama2_model), batch_size=4).generate([prompt], params)[0]
    assert completion.text == reference.text
    fmt = sequence_format(load_tokenizer(str(folder)))
    ids = torch.tensor([fmt.prompt_ids(prompt)])
    torch.manual_seed(0)  # the sampler's seed for this batch: what generate() gives with the checkpoint's settings
    own = load_model(str(folder)).generate(ids, do_sample=True, max_new_tokens=16, pad_token_id=eos)
    assert fmt.decode_completion([t for t in own[0, ids.shape[1]:].tolist() if t != eos]) != reference.text


def test_sequences_past_the_position_range_fail_clearly(tmp_path):
    from vstar.models.tiny import TinyModelSpec, build_tiny_model

    model = str(build_tiny_model(tmp_path / "tiny", TinyModelSpec(hidden_size=16, num_layers=1, num_heads=2,
                                                                  intermediate_size=16, max_positions=32)))
    sampler = TransformersSampler(model, batch_size=4)
    with pytest.raises(VstarError, match=r"max_position_embeddings \(32\)"):
        sampler.generate(["1 2 3 -> 6\n" * 3], SamplingParams(max_new_tokens=8))
    with pytest.raises(VstarError, match=r"max_position_embeddings \(32\)"):
        completion_logprobs(model, ["1 2 -> 3\n"], ["1+2=3\n" * 8], [True])


def test_too_long_examples_are_counted_and_none_left_fails_clearly():
    fmt = sequence_format(build_char_tokenizer())
    examples = [{"prompt": "1 2 -> 3\n", "completion": "1+2=3"}, {"prompt": "1 2 3 4 -> 10\n" * 4, "completion": "x"}]
    rows, counts = sft_rows(fmt, examples, 20, "generator.max_length")
    assert len(rows) == 1 and counts == {"examples_too_long": 1, "longest_tokens": 14 * 4 + 2}
    with pytest.raises(VstarError, match=r"generator.max_length=5: none of the 2 examples fit .*Raise generator.max_length"):
        sft_rows(fmt, examples, 5, "generator.max_length")
    pairs = [{"prompt": "1 2 -> 3\n", "chosen": "1+2=3", "rejected": "1+2=4"},
             {"prompt": "1 2 -> 3\n", "chosen": "1+2=3", "rejected": "1+2=3 and much more text"}]
    rows, counts = dpo_rows(fmt, pairs, 20, "verifier.max_length")
    assert len(rows) == 1 and counts == {"pairs_too_long": 1, "longest_tokens": 9 + 24 + 1}
    with pytest.raises(VstarError, match="verifier.max_length=10: none of the 2 pairs fit"):
        dpo_rows(fmt, pairs, 10, "verifier.max_length")


def test_scores_are_the_same_alone_and_in_any_batch(smollm2_random):
    prompts = ["What is 2+3?", "Natalia sold clips to 48 of her friends. How many?", "Hi"] * 2
    completions = [" 5", " She sold 72 clips in all.\nThe answer is 72.", "Hello there, how are you doing today?",
                   "", "x", " The answer is 7."]
    finished = [True, True, False, True, False, True]
    path = str(smollm2_random)
    together, counts = completion_logprobs(path, prompts, completions, finished, chat_template="off")
    small_batches, _ = completion_logprobs(path, prompts, completions, finished, chat_template="off", batch_tokens=40)
    alone = [completion_logprobs(path, [p], [c], [f], chat_template="off")[0][0]
             for p, c, f in zip(prompts, completions, finished)]
    assert together == pytest.approx(alone, abs=1e-4) and small_batches == pytest.approx(alone, abs=1e-4)
    assert counts[3] == 1 and counts[4] == 1  # an empty finished completion is its end token; "x" one token
    assert all(s < 0 for s in together)


def test_token_batches_stay_within_the_budget():
    lengths = [5, 40, 7, 12, 12, 3, 90]
    batches = token_batches(lengths, 36)
    assert sorted(i for batch in batches for i in batch) == list(range(7))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 36
    assert [lengths[b[0]] for b in batches] == sorted(lengths[b[0]] for b in batches)
