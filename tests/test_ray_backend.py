"""The Ray backend against a real local Ray instance: same labels, samples and scores as the local path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vstar.config import from_dict
from vstar.errors import VstarError
from vstar.models.tiny import TinyModelSpec, build_tiny_model
from vstar.sampling.base import SamplingParams
from vstar.tasks import get_task

ray = pytest.importorskip("ray")
from vstar.execution import ray_backend, ray_connection, ray_sampling  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = {"n_sft": 12, "n_query": 12, "n_test": 4, "max_number": 9, "max_value": 30}
TINY = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=128)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance (2 CPUs, no dashboard, no auth) for the whole module."""
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()
    if saved is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = saved


def ray_config(task: str = "embedded", options: dict | None = None, **sampling):
    return from_dict({
        "task": {"name": task, "options": EMBEDDED if options is None else options},
        "sampling": {"batch_size": 4, **sampling},
        "execution": {"backend": "ray", "num_workers": 2},
    })


def embedded_samples() -> tuple[list, list[str]]:
    """Gold solutions of the embedded task and broken variants of them, each problem twice over."""
    task = get_task("embedded", EMBEDDED)
    problems, completions = [], []
    for problem in task.problems("sft"):
        lines = problem.solution.splitlines()
        wrong_last = lines[:-1] + [lines[-1].rsplit("=", 1)[0] + "=0"]
        for text in (problem.solution, "\n".join(wrong_last) + "\n", lines[0] + "\n", "no steps\n"):
            problems.append(problem)
            completions.append(text)
    return problems, completions


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny"), TINY, seed=3))


def test_embedded_labels_from_ray_equal_local_labels(local_ray):
    problems, completions = embedded_samples()
    local = get_task("embedded", EMBEDDED).check_many(problems, completions)
    remote = ray_backend.check_with_ray(ray_config(), problems, completions)
    assert remote == local
    assert {v.status for v in remote} >= {"passed", "failed"}


def test_mbpp_labels_from_ray_equal_local_labels(local_ray, shared_data):
    options = {"data_path": str(shared_data / "mbpp" / "mbpp.jsonl"), "n_sft": 10, "isolation": "rlimits",
               "workers": 1, "timeout": 3}
    task = get_task("mbpp", options)
    try:
        problems, completions = [], []
        for problem in task.problems("sft"):
            code = problem.solution
            for text in (code, code.replace("return", "return None and", 1), "def broken(:\n[DONE]"):
                problems.append(problem)
                completions.append(text)
        local = task.check_many(problems, completions)
    finally:
        task.close()
    remote = ray_backend.check_with_ray(ray_config("mbpp", options), problems, completions)
    assert [v.to_record() for v in remote] == [v.to_record() for v in local]
    assert sum(v.correct for v in remote) >= 9  # the reference solutions pass


def test_a_killed_labeling_worker_is_retried_and_nothing_is_dropped(local_ray, tmp_path):
    problems, completions = embedded_samples()
    marker = tmp_path / "killed"

    def check_dying_once(task_name, task_options, chunk_problems, chunk_completions):
        try:  # the first chunk to start kills its worker process, once
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            os._exit(1)
        except FileExistsError:
            pass
        return ray_backend.check_chunk(task_name, task_options, chunk_problems, chunk_completions)

    remote = ray_backend.check_with_ray(ray_config(), problems, completions, check=check_dying_once)
    assert marker.exists()  # a worker did die
    assert remote == get_task("embedded", EMBEDDED).check_many(problems, completions)


def test_a_chunk_with_missing_verdicts_is_an_error(local_ray):
    problems, completions = embedded_samples()

    def check_losing_one(task_name, task_options, chunk_problems, chunk_completions):
        return ray_backend.check_chunk(task_name, task_options, chunk_problems, chunk_completions)[1:]

    with pytest.raises(VstarError, match="refusing to drop"):
        ray_backend.check_with_ray(ray_config(), problems, completions, check=check_losing_one)


def test_batches_generated_in_any_split_equal_one_generate_call(tiny_model):
    """What the Ray path relies on: each batch of the plan is self-contained (rows and seed)."""
    from vstar.execution.ray_backend import split_evenly
    from vstar.sampling.hf import TransformersSampler, batch_plan

    prompts = ["1 2 -> 3\n", "4 5 -> 9\n", "3 3 -> 6\n"]
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=5)
    sampler = TransformersSampler(tiny_model, batch_size=4)
    whole = sampler.generate(prompts, params)
    plan = batch_plan(len(prompts), params.n, 4)
    assert len(plan) == 3 and [b.start for b in plan] == [0, 4, 8]
    shards = split_evenly(plan, 2)[::-1]  # the second shard first, as a faster worker might
    pieces = [sampler.generate_batches(prompts, params, shard, progress=False) for shard in shards]
    rebuilt = [[None] * params.n for _ in prompts]
    for shard, piece in zip(shards, pieces):
        for batch, completions in zip(shard, piece):
            for (i, j), completion in zip(batch.rows, completions):
                rebuilt[i][j] = completion
    assert rebuilt == whole


@pytest.mark.slow  # two sampling actors each import transformers (~10 s of CPU): ~15 s idle, ~30 s on a busy machine
def test_ray_sampling_records_equal_local_records(local_ray, tiny_model):
    from vstar.sampling.hf import TransformersSampler

    prompts = [p.prompt for p in get_task("embedded", EMBEDDED).problems("test")] + ["1 2 -> 3\n"]
    params = SamplingParams(n=3, temperature=1.0, top_p=0.95, max_new_tokens=12, stop=("\n\n",), seed=11)
    calls = [(prompts, params), (prompts[:2], SamplingParams(n=2, max_new_tokens=6, seed=12)), ([], params)]
    delivered = []
    remote = ray_sampling.generate_chunks_with_ray(ray_config(), tiny_model, calls, "test",
                                                   on_call=lambda c, rows: delivered.append((c, rows)))
    local_sampler = TransformersSampler(tiny_model, batch_size=4)
    local = [local_sampler.generate(call_prompts, call_params) for call_prompts, call_params in calls]
    assert remote == local
    assert delivered == list(enumerate(local))  # each call handed over once, in order
    assert [len(row) for row in remote[0]] == [3] * len(prompts)


@pytest.mark.slow  # two fresh worker processes import transformers (~10 s of CPU each)
def test_ray_scores_equal_local_scores(local_ray, tiny_model):
    from vstar.scoring.logprobs import completion_logprobs

    prompts = ["1 2 -> 3\n", "4 5 -> 9\n", "3 3 -> 6\n"]
    completions = ["1+2=3\n", "4+5=9\n", "3+"]
    finished = [True, True, False]
    sums, counts = ray_backend.score_with_ray(ray_config(), tiny_model, prompts, completions, finished)
    local_sums, local_counts = completion_logprobs(tiny_model, prompts, completions, finished)
    assert counts == local_counts
    assert sums == pytest.approx(local_sums, abs=1e-4)


def test_connect_reuses_the_running_instance(local_ray):
    before = ray.get_runtime_context().get_node_id()
    assert ray_connection.connect(ray_config()) is ray
    assert ray.get_runtime_context().get_node_id() == before


def test_split_evenly_keeps_order_and_balance():
    parts = ray_backend.split_evenly(list(range(10)), 3)
    assert parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert ray_backend.split_evenly([1], 4) == [[1]]


def test_end_to_end_run_on_ray_matches_the_local_run(local_ray, tmp_path):
    """configs/embedded_ray.yaml through `vstar run` on the local Ray instance: the same samples and
    labels as the same config run locally, so every pass@k figure agrees too."""
    from vstar.cli import main
    from vstar.rundir import read_jsonl

    config = str(REPO / "configs" / "embedded_ray.yaml")
    on_ray, local = tmp_path / "on_ray", tmp_path / "local"
    assert main(["run", "--config", config, "--run-dir", str(on_ray)]) == 0
    assert main(["run", "--config", config, "--run-dir", str(local), "--set", "execution.backend=local"]) == 0
    for name in ("iter_1/samples.jsonl", "iter_1/labels.jsonl", "eval/candidates.jsonl", "eval/labels.jsonl"):
        assert read_jsonl(on_ray / name) == read_jsonl(local / name), name
    samples = read_jsonl(on_ray / "iter_1" / "samples.jsonl")
    assert len(samples) == (48 + 32) * 4  # every query problem, k = 4: nothing dropped
    metrics = [json.loads((run / "eval" / "metrics.json").read_text()) for run in (on_ray, local)]
    assert metrics[0]["n_problems"] == metrics[1]["n_problems"] == 8
    for curve in ("SFT pass@k", "STaR† pass@k"):
        assert metrics[0]["curves"][curve] == metrics[1]["curves"][curve]
    scores = [read_jsonl(run / "eval" / "scores.jsonl") for run in (on_ray, local)]
    assert [r["verifier_logp_sum"] for r in scores[0]] == pytest.approx([r["verifier_logp_sum"] for r in scores[1]], abs=1e-3)


def test_a_vllm_replica_needs_its_tensor_parallel_gpus(local_ray):
    config = from_dict({"sampling": {"backend": "vllm"},
                        "execution": {"backend": "ray", "gpus_per_worker": 1, "tensor_parallel_size": 2}})
    with pytest.raises(VstarError, match="execution.gpus_per_worker"):
        ray_sampling.generate_chunks_with_ray(config, "unused", [(["p"], SamplingParams())])
