"""The paper's other methods, run from the same run directory and, where the protocol
allows, the same samples:

- RFT: one iteration with ``iterations x k`` samples per problem from G_SFT (the same
  sampling budget as T iterations of k); the first k are iteration 1's samples.
- V-STaR[1 iter]: a DPO verifier trained on the RFT samples only, ranking G_RFT's candidates.
- ORM: G_SFT with a scalar head, binary correctness loss on D_VER; score = P(correct).
- GenRM-style: G_SFT fine-tuned to answer "Is the answer correct? Yes/No"; score = P(Yes).
"""

from __future__ import annotations

import random
import shutil
from collections import defaultdict
from pathlib import Path

from vstar import stages
from vstar.config import Config
from vstar.evaluation.stage import sample_candidates, score_candidates
from vstar.evaluation.tables import rft_curves
from vstar.rundir import RunDir, read_jsonl, replace_dir, write_jsonl
from vstar.tasks import Task
from vstar.training.genrm import train_genrm


def rft_dir(run: RunDir) -> Path:
    return run.root / "rft"


def rft_samples(config: Config, run: RunDir, task: Task) -> dict:
    """iterations x k samples per query problem from G_SFT: iteration 1's k, plus the rest drawn now."""
    folder = rft_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    query = task.problems("query")
    extra_n = (config.run.iterations - 1) * config.sampling.k
    first = read_jsonl(run.iteration(1) / "samples.jsonl")
    first_labels = read_jsonl(run.iteration(1) / "labels.jsonl")
    if extra_n > 0:
        stages.sample(config, str(run.sft), query, extra_n, config.run.seed + 424242, folder / ".extra_samples.jsonl",
                      config.sampling.temperature, desc="RFT: extra samples", stop=task.stop)
        stages.label(config, task, query, folder / ".extra_samples.jsonl", folder / ".extra_labels.jsonl")
        extra = read_jsonl(folder / ".extra_samples.jsonl")
        extra_labels = read_jsonl(folder / ".extra_labels.jsonl")
    else:
        extra, extra_labels = [], []
    k = config.sampling.k
    for record in extra + extra_labels:
        record["sample_index"] += k
    write_jsonl(folder / "samples.jsonl", first + extra)
    write_jsonl(folder / "labels.jsonl", first_labels + extra_labels)
    for tmp in folder.glob(".extra_*.jsonl"):
        tmp.unlink()
    return {"samples": len(first) + len(extra), "tokens_sampled": sum(r["num_tokens"] for r in first + extra)}


def _joined(folder: Path) -> list[dict]:
    return [{**s, "correct": l["correct"]} for s, l in zip(read_jsonl(folder / "samples.jsonl"), read_jsonl(folder / "labels.jsonl"))]


def rft_generator(config: Config, run: RunDir, task: Task, base_path: str) -> dict:
    """G_RFT: SFT from G_base on D_SFT + the distinct correct RFT samples."""
    examples = stages.gold_examples(task)
    seen: dict[str, set] = defaultdict(set)
    for record in _joined(rft_dir(run)):
        if record["correct"] and record["completion"] not in seen[record["problem_id"]]:
            seen[record["problem_id"]].add(record["completion"])
            examples.append({"prompt": record["prompt"], "completion": record["completion"],
                             "finished": record.get("finished", True)})
    return stages.train_generator(config, base_path, examples, rft_dir(run) / "generator", config.run.seed + 99)


def verifier_1iter(config: Config, run: RunDir, task: Task) -> dict:
    """V-STaR[1 iter]: DPO from G_SFT on pairs from D_SFT + the RFT samples."""
    data = stages.gold_records(task) + _joined(rft_dir(run))
    return stages.train_verifier_on(config, run, data, run.root / "verifier_1iter")


def classifier_examples(config: Config, data: list[dict]) -> list[dict]:
    """Distinct (problem, completion) labeled samples, at most ``max_examples_per_problem`` each."""
    by_problem: dict[str, dict[str, dict]] = defaultdict(dict)
    for record in data:
        by_problem[record["problem_id"]].setdefault(record["completion"], record)
    rng = random.Random(config.run.seed)
    cap = config.baselines.max_examples_per_problem
    examples = []
    for pid in sorted(by_problem):
        records = list(by_problem[pid].values())
        if len(records) > cap:
            records = rng.sample(records, cap)
        examples += [{"prompt": r["prompt"], "completion": r["completion"], "correct": bool(r["correct"]),
                      "finished": r.get("finished", True)} for r in records]
    return examples


def train_classifier_verifier(config: Config, run: RunDir, task: Task, kind: str) -> dict:
    """Train the ORM or the GenRM verifier on D_VER (the DPO verifier's labeled samples)."""
    from vstar.training.orm import train_orm  # lazy: torch

    data = stages.verifier_data(task, run, range(1, config.run.iterations + 1))
    examples = classifier_examples(config, data)
    out_dir = run.root / kind
    tmp = out_dir.with_name(kind + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if kind == "orm":
        summary = train_orm(str(run.sft), examples, tmp, config.verifier, config.run.seed, config.baselines.orm_lm_loss,
                            config.model.chat_template)
    else:
        summary = train_genrm(str(run.sft), examples, tmp, config.verifier, config.run.seed, config.model.chat_template)
    shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    replace_dir(tmp, out_dir)
    return summary


def score_with_classifiers(config: Config, run: RunDir, eval_dir: Path) -> dict:
    """ORM P(correct) and GenRM P(Yes) for G_T's candidates -> eval/classifier_scores.jsonl."""
    from vstar.scoring.classifiers import orm_probabilities, yes_probabilities  # lazy: torch

    candidates = [c for c in read_jsonl(eval_dir / "candidates.jsonl") if c["source"] == "final"]
    prompts = [c["prompt"] for c in candidates]
    completions = [c["completion"] for c in candidates]
    finished = [c["finished"] for c in candidates]
    chat = config.model.chat_template
    columns = {}
    if config.baselines.orm:
        columns["orm_prob"] = orm_probabilities(str(run.root / "orm"), prompts, completions, finished, chat_template=chat)
    if config.baselines.genrm:
        columns["genrm_yes"] = yes_probabilities(str(run.root / "genrm"), prompts, completions, chat_template=chat)
    records = [
        {"problem_id": c["problem_id"], "sample_index": c["sample_index"], **{k: v[i] for k, v in columns.items()}}
        for i, c in enumerate(candidates)
    ]
    write_jsonl(eval_dir / "classifier_scores.jsonl", records)
    return {"scored": len(records), "columns": sorted(columns)}


def enabled(config: Config) -> bool:
    """Whether any baseline is evaluated (RFT, ORM or GenRM)."""
    return any((config.baselines.rft, config.baselines.orm, config.baselines.genrm))


def evaluate_baselines(config: Config, run: RunDir, task: Task, eval_dir: Path) -> dict:
    """Score G_T's candidates with ORM/GenRM, and evaluate G_RFT (+ V-STaR[1 iter]) in ``<eval_dir>_rft``.

    Returns a compute summary, with the extra curves for the metrics under "curves".
    """
    summary: dict = {}
    if config.baselines.orm or config.baselines.genrm:
        summary.update(score_with_classifiers(config, run, eval_dir))
    curves: dict = {}
    if config.baselines.rft:
        rft_eval = eval_dir.with_name(eval_dir.name + "_rft")
        rft_eval.mkdir(parents=True, exist_ok=True)
        generator = str(rft_dir(run) / "generator")
        verifier = str(run.root / "verifier_1iter") if config.baselines.vstar_1iter else None
        part = sample_candidates(config, run, task, generator, rft_eval, include_sft=False)
        summary["tokens_sampled_rft"] = part["tokens_sampled_final"]
        stages.label(config, task, task.problems("test"), rft_eval / "candidates.jsonl", rft_eval / "labels.jsonl")
        score_candidates(config, run, generator, verifier, rft_eval)
        curves = rft_curves(read_jsonl(rft_eval / "candidates.jsonl"), read_jsonl(rft_eval / "labels.jsonl"),
                            read_jsonl(rft_eval / "scores.jsonl"), config)
    return {**summary, "curves": curves}
