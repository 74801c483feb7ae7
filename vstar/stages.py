"""The stages of Algorithm 1. Each reads and writes files in the run directory.

``pipeline.py`` calls these in order and handles resume; the CLI's stage
commands call them one at a time. A stage chooses where its work runs: in this process,
or on Ray (``execution.backend``, ``vstar.execution``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

from vstar.config import Config
from vstar.errors import VstarError
from vstar.execution.ray_backend import check_with_ray, score_with_ray
from vstar.execution.ray_sampling import generate_chunks_with_ray
from vstar.progress import tqdm
from vstar.rundir import (
    RunDir,
    append_jsonl,
    fingerprint,
    read_jsonl,
    read_partial_jsonl,
    replace_dir,
    write_json,
    write_jsonl,
    write_text,
)
from vstar.sampling import make_sampler
from vstar.sampling.base import SamplingParams, end_completion
from vstar.tasks import Problem, Task
from vstar.training.pairs import build_pairs, split_heldout

log = logging.getLogger("vstar")

#: file in a training stage's temp dir naming the inputs its checkpoints belong to
TRAINING_KEY_FILE = ".vstar_training_key"


def prepare_base(config: Config, run: RunDir) -> str:
    """G_base: build and save the tiny model for 'embedded', else the configured path/hub id."""
    if config.model.base != "embedded":
        from vstar.models.pretrained import resolve_model  # lazy: transformers

        return resolve_model(config.model.base)
    from vstar.models.tiny import TinyModelSpec, build_tiny_model  # lazy: transformers

    spec = TinyModelSpec(
        hidden_size=config.model.tiny_hidden_size,
        num_layers=config.model.tiny_layers,
        num_heads=config.model.tiny_heads,
        intermediate_size=config.model.tiny_intermediate_size,
        max_positions=config.model.tiny_max_positions,
    )
    tmp = run.root / ".base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_model(tmp, spec, seed=config.run.seed)
    replace_dir(tmp, run.base)
    return str(run.base)


def train_generator(config: Config, base_path: str, examples: list[dict], out_dir: Path, seed: int) -> dict:
    """SFT from G_base on ``examples``; written to a temp dir, moved into place when done.

    A killed run leaves the temp dir with the trainer's checkpoints; the next call with the
    same inputs resumes from the last complete one.
    """
    from vstar.training.sft import train_sft  # lazy: torch

    key = fingerprint(model_identity(base_path), examples, dataclasses.asdict(config.generator), seed, config.model.dtype,
                      config.execution.num_processes)
    tmp = training_dir(out_dir, key)
    summary = train_sft(base_path, examples, tmp, config.generator, seed, config.model.dtype, config.execution,
                        config.model.chat_template)
    finish_training_dir(tmp, out_dir)
    return summary


def model_identity(model_path: str) -> object:
    """What a model reference stands for in a fingerprint: a local folder's contents, else the hub id."""
    return Path(model_path) if Path(model_path).is_dir() else model_path


def training_dir(out_dir: Path, key: str) -> Path:
    """The temp dir a training stage writes into: kept (with its checkpoints) when it was made for
    the same inputs (``key``), else emptied."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    key_file = tmp / TRAINING_KEY_FILE
    if not (key_file.is_file() and key_file.read_text() == key):
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write_text(key_file, key)
    return tmp


def finish_training_dir(tmp: Path, out_dir: Path) -> None:
    """Drop the checkpoints and the key file, then move the trained model into place."""
    shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    (tmp / TRAINING_KEY_FILE).unlink(missing_ok=True)
    replace_dir(tmp, out_dir)


def gold_completion(task: Task, problem: Problem) -> str:
    """A gold solution ended as sampled completions are (``end_completion``: cut at the task's first
    stop string, no trailing whitespace), so no ending tells gold from samples."""
    return end_completion(problem.solution, task.stop)[0]


def gold_examples(task: Task) -> list[dict]:
    return [{"prompt": p.prompt, "completion": gold_completion(task, p)} for p in task.problems("sft") if p.solution]


def sample(
    config: Config,
    model_path: str,
    problems: Sequence[Problem],
    n: int,
    seed: int,
    out_file: Path,
    temperature: float,
    desc: str,
    *,
    stop: Sequence[str],
) -> dict:
    """``n`` completions per problem from ``model_path`` -> ``out_file`` (samples.jsonl), each cut
    at the first of ``stop`` (the task's stop strings, ``task.stop``).

    Finished chunks go to ``<name>.partial.jsonl`` beside it first, so a killed run resumes
    from the last complete chunk (see ``sample_records``).
    """
    partial = partial_file(out_file)
    records = sample_records(config, model_path, problems, n, seed, partial, temperature, desc, stop=stop)
    write_jsonl(out_file, records)
    partial.unlink(missing_ok=True)
    return {"samples": len(records), "tokens_sampled": sum(r["num_tokens"] for r in records)}


def partial_file(out_file: Path) -> Path:
    """``samples.jsonl`` -> ``samples.partial.jsonl``."""
    out_file = Path(out_file)
    return out_file.with_name(out_file.name.removesuffix(".jsonl") + ".partial.jsonl")


def sample_records(
    config: Config,
    model_path: str,
    problems: Sequence[Problem],
    n: int,
    seed: int,
    partial: Path,
    temperature: float,
    desc: str,
    *,
    stop: Sequence[str],
) -> list[dict]:
    """Sample records for every problem, appended chunk by chunk to ``partial`` (fsync per chunk).

    The first line of ``partial`` is a header with a fingerprint of the model, the settings and
    the prompts; a partial file with another header is discarded. Each chunk of problems is
    sampled with a seed fixed by the run's seed and the chunk's position, so a resumed run
    produces exactly the records of an uninterrupted one. Returns the records in order.
    """
    params = SamplingParams(n=n, temperature=temperature, top_p=config.sampling.top_p,
                            max_new_tokens=config.sampling.max_new_tokens, stop=tuple(stop), seed=seed)
    per_chunk = _problems_per_chunk(config, n, len(problems))
    header = {"partial_of": fingerprint(model_identity(model_path), dataclasses.asdict(params), per_chunk,
                                        config.sampling.backend, [(p.id, p.prompt) for p in problems])}
    records = _resume_partial(partial, header, problems, n, per_chunk)
    if len(records) < len(problems) * n:
        if records:
            log.info("%s: resuming, %d of %d problems already sampled", desc, len(records) // n, len(problems))
        _sample_chunks(config, model_path, problems, params, partial, per_chunk, records, desc)
    return records


def _problems_per_chunk(config: Config, n: int, num_problems: int) -> int:
    """Problems per chunk: one sampling batch's worth. The Ray backend keeps the local chunks (so
    its samples equal the local path's) and runs them all on one set of actors."""
    if config.sampling.backend == "vllm":  # vLLM schedules its own batches: give it plenty of work per call
        return max(1, min(num_problems, 50_000 // max(1, n)))
    return max(1, config.sampling.batch_size // max(1, n))


def _chunk_seed(seed: int, start: int) -> int:
    """The sampling seed of the chunk starting at problem ``start``."""
    return int(fingerprint("chunk", seed, start)[:8], 16)


def _resume_partial(partial: Path, header: dict, problems: Sequence[Problem], n: int, per_chunk: int) -> list[dict]:
    """The records of the complete chunks in ``partial`` (the file is cut back to them), or a
    fresh file holding only ``header`` when it is missing or was made for other inputs."""
    lines = read_partial_jsonl(partial)
    records = lines[1:] if lines and lines[0] == header else []
    chunk_rows = per_chunk * n
    keep = len(problems) * n if len(records) >= len(problems) * n else len(records) // chunk_rows * chunk_rows
    records = records[:keep]
    if any(r.get("problem_id") != problems[i // n].id or r.get("sample_index") != i % n for i, r in enumerate(records)):
        records = []
    if not lines or lines[0] != header or len(lines) - 1 != len(records):
        partial.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(partial, [header] + records)
    return records


def _sample_chunks(
    config: Config, model_path: str, problems: Sequence[Problem], params: SamplingParams, partial: Path,
    per_chunk: int, records: list[dict], desc: str,
) -> None:
    """Sample the chunks after those in ``records``, appending each to ``partial`` and ``records``."""
    n = params.n
    starts = range(len(records) // n, len(problems), per_chunk)
    chunks = [(start, problems[start : start + per_chunk]) for start in starts]
    calls = [([p.prompt for p in chunk], dataclasses.replace(params, seed=_chunk_seed(params.seed, start)))
             for start, chunk in chunks]

    def keep(index: int, results: list, bar=None) -> None:  # one finished chunk -> partial file and records
        new = [
            {"problem_id": problem.id, "sample_index": j, "prompt": problem.prompt, "completion": c.text,
             "num_tokens": c.num_tokens, "finished": c.finished}
            for problem, row in zip(chunks[index][1], results)
            for j, c in enumerate(row)
        ]
        append_jsonl(partial, new)
        records.extend(new)
        if bar is not None:
            bar.update(len(new))

    if config.execution.backend == "ray":  # every chunk on one set of actors, kept in order as they finish
        generate_chunks_with_ray(config, model_path, calls, desc=desc, on_call=keep)
        return
    sampler = make_sampler(config.sampling.backend, model_path, config.sampling.batch_size, config.model.dtype,
                           config.execution.tensor_parallel_size, config.execution.gpu_memory_utilization,
                           config.model.chat_template)
    try:
        with tqdm(total=len(problems) * n, initial=len(records), desc=desc, unit="seq", leave=False) as bar:
            for index, (prompts, chunk_params) in enumerate(calls):
                keep(index, sampler.generate(prompts, chunk_params, desc=desc), bar)
    finally:
        sampler.close()


def label(config: Config, task: Task, problems: Sequence[Problem], samples_file: Path, out_file: Path) -> dict:
    """Check every sample; labels.jsonl lines match samples.jsonl lines one to one."""
    by_id = {p.id: p for p in problems}
    samples = read_jsonl(samples_file)
    checked = [by_id[s["problem_id"]] for s in samples]
    completions = [s["completion"] for s in samples]
    if config.execution.backend == "ray":
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
            examples.append({"prompt": record["prompt"], "completion": record["completion"],
                             "finished": record.get("finished", True)})
    return examples


def gold_records(task: Task) -> list[dict]:
    """D_SFT's gold solutions as labeled records (they count as correct)."""
    return [
        {"problem_id": p.id, "prompt": p.prompt, "completion": gold_completion(task, p), "correct": True,
         "finished": True}
        for p in task.problems("sft")
        if p.solution
    ]


def verifier_data(task: Task, run: RunDir, iterations: Sequence[int]) -> list[dict]:
    """D_VER: gold solutions (correct) plus every labeled sample of ``iterations``."""
    return gold_records(task) + labeled_samples(run, iterations)


def train_verifier(config: Config, run: RunDir, task: Task, iterations: Sequence[int], out_dir: Path) -> dict:
    """The V-STaR verifier: DPO on pairs from D_VER (gold + the samples of ``iterations``)."""
    return train_verifier_on(config, run, verifier_data(task, run, iterations), out_dir)


def train_verifier_on(config: Config, run: RunDir, labeled: list[dict], out_dir: Path) -> dict:
    """Pairs from labeled records -> DPO from G_SFT -> held-out pair accuracy."""
    from vstar.training.dpo import train_dpo  # lazy: torch

    pairs, counts = build_pairs(labeled, config.verifier.max_pairs_per_problem, config.run.seed)
    if not pairs:
        raise_no_pairs(counts)
    train_pairs, heldout = split_heldout(pairs, config.verifier.heldout_fraction, config.run.seed)
    key = fingerprint(run.sft, train_pairs, dataclasses.asdict(config.verifier), config.run.seed, config.model.dtype,
                      config.execution.num_processes)
    tmp = training_dir(out_dir, key)
    write_jsonl(
        tmp / "pairs.jsonl",
        [{**p, "heldout": False} for p in train_pairs] + [{**p, "heldout": True} for p in heldout],
    )
    summary = train_dpo(str(run.sft), train_pairs, tmp, config.verifier, config.run.seed, config.model.dtype,
                        config.execution, config.model.chat_template)
    summary.update(counts)
    summary["heldout"] = pair_accuracy(str(tmp), str(run.sft), heldout, config)
    write_json(tmp / "summary.json", summary)
    finish_training_dir(tmp, out_dir)
    return summary


def raise_no_pairs(counts: dict) -> None:
    raise VstarError(
        f"verifier: no correct/incorrect pairs to train on ({counts}). Every problem's samples were all "
        "correct or all incorrect; sample more (sampling.k) or check the task's checker."
    )


def scorer(config: Config) -> Callable:
    """``completion_logprobs(model_path, prompts, completions, finished, desc=...)`` with the run's settings, in
    this process or fanned out over Ray workers when ``execution.backend`` is ray."""
    if config.execution.backend == "ray":
        return functools.partial(score_with_ray, config)
    from vstar.scoring import completion_logprobs, scoring_settings  # lazy: torch

    return functools.partial(completion_logprobs, **scoring_settings(config))


def pair_accuracy(verifier_path: str, sft_path: str, pairs: list[dict], config: Config) -> dict:
    """How often V ranks the chosen completion above the rejected one, on held-out pairs."""
    completion_logprobs = scorer(config)
    if not pairs:
        return {"pairs": 0}
    prompts = [p["prompt"] for p in pairs] * 2
    texts = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    finished = [p.get(f"{side}_finished", True) for side in ("chosen", "rejected") for p in pairs]
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
