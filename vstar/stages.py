"""The stages of Algorithm 1. Each reads and writes files in the run directory.

``pipeline.py`` calls these in order and handles resume; the CLI's stage
commands call them one at a time.
"""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from vstar.config import Config
from vstar.rundir import RunDir, read_jsonl, replace_dir, write_json, write_jsonl
from vstar.sampling import make_sampler
from vstar.sampling.base import SamplingParams
from vstar.tasks import Problem, Task

log = logging.getLogger("vstar")


def prepare_base(config: Config, run: RunDir) -> str:
    """G_base: build and save the tiny model for 'embedded', else the configured path/hub id."""
    if config.model.base != "embedded":
        return config.model.base
    from vstar.models.tiny import TinyModelSpec, build_tiny_model

    spec = TinyModelSpec(
        hidden_size=config.model.tiny_hidden_size,
        num_layers=config.model.tiny_layers,
        num_heads=config.model.tiny_heads,
        intermediate_size=config.model.tiny_intermediate_size,
    )
    tmp = run.root / ".base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_model(tmp, spec, seed=config.run.seed)
    replace_dir(tmp, run.base)
    return str(run.base)


def train_generator(config: Config, base_path: str, examples: list[dict], out_dir: Path, seed: int) -> dict:
    """SFT from G_base on ``examples``; written to a temp dir, moved into place when done."""
    from vstar.training.sft import train_sft

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    summary = train_sft(base_path, examples, tmp, config.generator, seed, config.model.dtype)
    shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    replace_dir(tmp, out_dir)
    return summary


def gold_examples(task: Task) -> list[dict]:
    return [{"prompt": p.prompt, "completion": p.solution} for p in task.problems("sft") if p.solution]


def sample(
    config: Config,
    model_path: str,
    problems: Sequence[Problem],
    n: int,
    seed: int,
    out_file: Path,
    temperature: float,
    desc: str,
) -> dict:
    """``n`` completions per problem from ``model_path`` -> ``out_file`` (samples.jsonl)."""
    params = SamplingParams(
        n=n,
        temperature=temperature,
        top_p=config.sampling.top_p,
        max_new_tokens=config.sampling.max_new_tokens,
        stop=_task_stop(config),
        seed=seed,
    )
    prompts = [p.prompt for p in problems]
    if config.execution.backend == "ray":
        from vstar.execution.ray_backend import generate_with_ray

        results = generate_with_ray(config, model_path, prompts, params, desc=desc)
    else:
        sampler = make_sampler(config.sampling.backend, model_path, config.sampling.batch_size, config.model.dtype)
        try:
            results = sampler.generate(prompts, params, desc=desc)
        finally:
            sampler.close()
    records = [
        {
            "problem_id": problem.id,
            "sample_index": j,
            "prompt": problem.prompt,
            "completion": c.text,
            "num_tokens": c.num_tokens,
            "finished": c.finished,
        }
        for problem, row in zip(problems, results)
        for j, c in enumerate(row)
    ]
    write_jsonl(out_file, records)
    return {"samples": len(records), "tokens_sampled": sum(r["num_tokens"] for r in records)}


def _task_stop(config: Config) -> tuple[str, ...]:
    from vstar.tasks.registry import get_task_class

    return tuple(get_task_class(config.task.name).stop)


def label(config: Config, task: Task, problems: Sequence[Problem], samples_file: Path, out_file: Path) -> dict:
    """Check every sample; labels.jsonl lines match samples.jsonl lines one to one."""
    by_id = {p.id: p for p in problems}
    samples = read_jsonl(samples_file)
    checked = [by_id[s["problem_id"]] for s in samples]
    completions = [s["completion"] for s in samples]
    if config.execution.backend == "ray":
        from vstar.execution.ray_backend import check_with_ray

        verdicts = check_with_ray(config, checked, completions)
    else:
        verdicts = task.check_many(checked, completions)
    records = [
        {"problem_id": s["problem_id"], "sample_index": s["sample_index"], **v.to_record()}
        for s, v in zip(samples, verdicts)
    ]
    write_jsonl(out_file, records)
    correct = sum(r["correct"] for r in records)
    return {"labeled": len(records), "correct": correct, "accuracy": correct / max(1, len(records))}


def labeled_samples(run: RunDir, iterations: Sequence[int]) -> list[dict]:
    """Samples of the given iterations joined with their labels."""
    joined = []
    for t in iterations:
        folder = run.iteration(t)
        for s, l in zip(read_jsonl(folder / "samples.jsonl"), read_jsonl(folder / "labels.jsonl")):
            joined.append({**s, "correct": l["correct"]})
    return joined


def generator_data(task: Task, run: RunDir, t: int) -> list[dict]:
    """D_GEN after iteration t: gold solutions plus the distinct correct samples of iterations 1..t."""
    examples = gold_examples(task)
    seen: dict[str, set] = defaultdict(set)
    for record in labeled_samples(run, range(1, t + 1)):
        if record["correct"] and record["completion"] not in seen[record["problem_id"]]:
            seen[record["problem_id"]].add(record["completion"])
            examples.append({"prompt": record["prompt"], "completion": record["completion"]})
    return examples


def verifier_data(task: Task, run: RunDir, iterations: Sequence[int]) -> list[dict]:
    """D_VER: gold solutions (correct) plus every labeled sample of ``iterations``."""
    gold = [
        {"problem_id": p.id, "prompt": p.prompt, "completion": p.solution, "correct": True}
        for p in task.problems("sft")
        if p.solution
    ]
    return gold + labeled_samples(run, iterations)


def train_verifier(config: Config, run: RunDir, task: Task, iterations: Sequence[int], out_dir: Path) -> dict:
    """Pairs from D_VER -> DPO from G_SFT -> held-out pair accuracy."""
    from vstar.training.dpo import train_dpo
    from vstar.training.pairs import build_pairs, split_heldout

    pairs, counts = build_pairs(
        verifier_data(task, run, iterations), config.verifier.max_pairs_per_problem, config.run.seed
    )
    if not pairs:
        raise_no_pairs(counts)
    train_pairs, heldout = split_heldout(pairs, config.verifier.heldout_fraction, config.run.seed)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_jsonl(
        tmp / "pairs.jsonl",
        [{**p, "heldout": False} for p in train_pairs] + [{**p, "heldout": True} for p in heldout],
    )
    summary = train_dpo(str(run.sft), train_pairs, tmp, config.verifier, config.run.seed, config.model.dtype)
    summary.update(counts)
    summary["heldout"] = pair_accuracy(str(tmp), str(run.sft), heldout, config)
    shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    write_json(tmp / "summary.json", summary)
    replace_dir(tmp, out_dir)
    return summary


def raise_no_pairs(counts: dict) -> None:
    from vstar.errors import VstarError

    raise VstarError(
        f"verifier: no correct/incorrect pairs to train on ({counts}). Every problem's samples were all "
        "correct or all incorrect; sample more (sampling.k) or check the task's checker."
    )


def pair_accuracy(verifier_path: str, sft_path: str, pairs: list[dict], config: Config) -> dict:
    """How often V ranks the chosen completion above the rejected one, on held-out pairs."""
    from vstar.scoring import scorer

    completion_logprobs = scorer(config)
    if not pairs:
        return {"pairs": 0}
    prompts = [p["prompt"] for p in pairs] * 2
    texts = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    finished = [True] * len(texts)
    v_sum, counts = completion_logprobs(verifier_path, prompts, texts, finished, desc="held-out pairs")
    ref_sum, _ = completion_logprobs(sft_path, prompts, texts, finished, desc="held-out pairs (ref)")
    n = len(pairs)

    def accuracy(scores: list[float]) -> float:
        return sum((scores[i] > scores[n + i]) + 0.5 * (scores[i] == scores[n + i]) for i in range(n)) / n

    return {
        "pairs": n,
        "accuracy_logp_sum": accuracy(v_sum),
        "accuracy_logp_mean": accuracy([s / max(1, c) for s, c in zip(v_sum, counts)]),
        "accuracy_dpo_reward": accuracy([v - r for v, r in zip(v_sum, ref_sum)]),
        "accuracy_ref_logp_sum": accuracy(ref_sum),
    }
