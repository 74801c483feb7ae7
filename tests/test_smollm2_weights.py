"""Checks with SmolLM2-135M-Instruct's real weights (slow: run with -m slow)."""

from __future__ import annotations

import pytest
import torch

from vstar.config import GeneratorSection, VerifierSection
from vstar.sampling.base import SamplingParams
from vstar.sampling.hf import TransformersSampler
from vstar.scoring.logprobs import completion_logprobs
from vstar.training.dpo import train_dpo
from vstar.training.sft import train_sft

pytestmark = pytest.mark.slow

PROMPTS = ["What is 12 + 7?", "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
           "clips in May. How many clips did Natalia sell altogether in April and May?", "Name a colour."]


def test_greedy_output_alone_equals_output_in_a_padded_batch(smollm2):
    sampler = TransformersSampler(str(smollm2), batch_size=8)
    params = SamplingParams(n=1, temperature=0, max_new_tokens=40)
    together = [row[0].text for row in sampler.generate(PROMPTS, params)]
    alone = [sampler.generate([prompt], params)[0][0].text for prompt in PROMPTS]
    assert together == alone
    assert all(text.strip() for text in together) and "12 + 7" in together[0]  # it answers, through its chat template


def test_scores_alone_equal_scores_in_a_batch(smollm2):
    completions = ["12 + 7 = 19.", "She sold 48 + 24 = 72 clips.", "Blue."]
    together, counts = completion_logprobs(str(smollm2), PROMPTS, completions, [True] * 3)
    alone = [completion_logprobs(str(smollm2), [p], [c], [True])[0][0] for p, c in zip(PROMPTS, completions)]
    assert together == pytest.approx(alone, abs=1e-4)
    assert all(-60 < score < 0 for score in together) and all(count > 2 for count in counts)


def test_lora_generator_and_lora_verifier_round_trip(smollm2, tmp_path):
    """V's log-probs equal G_SFT + the DPO adapter's, where G_SFT is SmolLM2 + an SFT adapter."""
    from peft import PeftModel

    from vstar.models import load_model
    from vstar.models.sequence import load_format

    examples = [{"prompt": f"What is {a} + {b}?", "completion": f"{a} + {b} = {a + b}."} for a, b in ((2, 3), (4, 4))]
    pairs = [{"prompt": e["prompt"], "chosen": e["completion"], "rejected": e["completion"][:-2] + "0."} for e in examples]
    lora = {"method": "lora", "epochs": 1.0, "batch_size": 2, "learning_rate": 1e-2, "max_length": 128, "lora_r": 4}
    train_sft(str(smollm2), examples, tmp_path / "sft", GeneratorSection(**lora), seed=0)
    train_dpo(str(tmp_path / "sft"), pairs, tmp_path / "verifier", VerifierSection(**lora, beta=0.1), seed=0)
    prompts, texts = [p["prompt"] for p in pairs] * 2, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    scores, _ = completion_logprobs(str(tmp_path / "verifier"), prompts, texts, [True] * 4)
    manual_model = PeftModel.from_pretrained(load_model(str(tmp_path / "sft")), str(tmp_path / "verifier")).merge_and_unload()
    fmt = load_format(str(smollm2))
    manual = []
    with torch.no_grad():
        for prompt, text in zip(prompts, texts):
            ids, start = fmt.encode(prompt, text)
            logp = torch.log_softmax(manual_model(torch.tensor([ids])).logits[0, :-1].float(), -1)
            targets = torch.tensor(ids[1:])
            manual.append(logp[torch.arange(len(targets)), targets][start - 1:].sum().item())
    assert scores == pytest.approx(manual, abs=1e-4)
