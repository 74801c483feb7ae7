"""The Python API of a trained verifier (vstar.serve), on the session's micro run: the same
numbers as the run's own eval/scores.jsonl, padding-safe batches, best-of-n from G_T."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vstar.config import load_config
from vstar.errors import VstarError
from vstar.rundir import read_jsonl
from vstar.scoring.variants import VARIANT_COLUMNS, score_variants
from vstar.serve import PAPER_SCORE, load_verifier

LOG_LIKELIHOOD_VARIANTS = ["V-STaR", "V-STaR (mean log-prob)", "V-STaR (DPO reward)", "control: G_SFT likelihood",
                           "control: generator mean log-prob"]


@pytest.fixture(scope="module")
def final_candidates(micro_run):
    """G_T's test candidates and their scores.jsonl rows, in the same order."""
    candidates = [c for c in read_jsonl(micro_run / "eval" / "candidates.jsonl") if c["source"] == "final"]
    scores = {(s["problem_id"], s["sample_index"]): s for s in read_jsonl(micro_run / "eval" / "scores.jsonl")}
    return candidates, [scores[(c["problem_id"], c["sample_index"])] for c in candidates]


def test_every_variant_equals_the_runs_own_scores(micro_verifier, final_candidates, micro_run):
    candidates, rows = final_candidates
    assert sorted(micro_verifier.variants) == sorted(LOG_LIKELIHOOD_VARIANTS)
    beta = micro_verifier.settings.beta
    assert beta == load_config(micro_run / "config.yaml").verifier.beta
    expected = score_variants({name: np.array([r[name] for r in rows]) for name in rows[0] if name not in
                               ("problem_id", "sample_index")}, beta)
    args = ([c["prompt"] for c in candidates], [c["completion"] for c in candidates], [c["finished"] for c in candidates])
    assert any(not f for f in args[2]) and any(args[2])  # both kinds of candidate are checked
    for variant in LOG_LIKELIHOOD_VARIANTS:
        got = micro_verifier.score_pairs(*args, variant=variant)
        assert np.allclose(got, expected[variant], atol=1e-4, rtol=0), variant


def test_score_one_prompt_matches_the_run(micro_verifier, final_candidates):
    candidates, rows = final_candidates
    first = [i for i, c in enumerate(candidates) if c["problem_id"] == candidates[0]["problem_id"]]
    got = micro_verifier.score(candidates[0]["prompt"], [candidates[i]["completion"] for i in first],
                         finished=[candidates[i]["finished"] for i in first])
    assert got == pytest.approx([rows[i]["verifier_logp_sum"] for i in first], abs=1e-4)


def test_a_completion_scores_the_same_alone_and_in_a_padded_batch(micro_verifier):
    prompt = "2 5 2 3 -> 6\n"
    completions = ["5+2=7\n7-3=4\n", "x", "5*2=10\n10-2=8\n8-3=5\n5+2=7\n", ""]
    together = micro_verifier.score(prompt, completions + ["a much longer neighbour " * 4])[:4]
    alone = [micro_verifier.score(prompt, [c])[0] for c in completions]
    assert together == pytest.approx(alone, abs=1e-4)
    assert len(set(round(s, 3) for s in together)) == 4 and all(s < 0 for s in together)


def test_a_finished_completion_also_scores_its_end_token(micro_verifier):
    prompt, completion = "1 2 -> 3\n", "1+2=3"
    done, cut = micro_verifier.score(prompt, [completion, completion], finished=[True, False])
    assert done < cut  # one more token, of log-probability < 0
    tokens = micro_verifier.columns([prompt] * 2, [completion] * 2, [True, False], ["tokens"])["tokens"]
    assert tokens == [len(completion) + 1, len(completion)]  # the embedded tokenizer: one token per character


def test_best_of_n_picks_the_highest_scored_of_its_candidates(micro_verifier):
    prompts = ["2 5 2 3 -> 6\n", "1 2 -> 3\n"]
    picks = micro_verifier.best_of_n(prompts, 3, seed=5, max_new_tokens=12)
    assert [p.prompt for p in picks] == prompts
    for pick in picks:
        assert len(pick.candidates) == 3 and pick.variant == PAPER_SCORE
        scores = [c.score for c in pick.candidates]
        assert pick.score == max(scores) and pick.completion == pick.candidates[pick.best].completion
        rescored = micro_verifier.score(pick.prompt, [c.completion for c in pick.candidates],
                                  finished=[c.finished for c in pick.candidates])
        assert rescored == pytest.approx(scores, abs=1e-4)
        assert all(c.num_tokens <= 12 for c in pick.candidates)
        record = pick.to_record()
        assert record["completion"] == pick.completion and len(record["candidates"]) == 3
    again = micro_verifier.best_of_n(prompts, 3, seed=5, max_new_tokens=12)
    assert [p.to_record() for p in again] == [p.to_record() for p in picks]  # seeded


def test_best_of_n_by_the_dpo_reward_ranks_by_that_variant(micro_verifier):
    (pick,) = micro_verifier.best_of_n(["3 4 -> 7\n"], 3, variant="V-STaR (DPO reward)", seed=1, max_new_tokens=8)
    texts = [c.completion for c in pick.candidates]
    flags = [c.finished for c in pick.candidates]
    v = micro_verifier.score(pick.prompt, texts, finished=flags)
    sft = micro_verifier.score(pick.prompt, texts, finished=flags, variant="control: G_SFT likelihood")
    beta = micro_verifier.settings.beta
    assert [c.score for c in pick.candidates] == pytest.approx([beta * (a - b) for a, b in zip(v, sft)], abs=1e-4)


def test_a_checkpoint_alone_gives_the_verifier_only_variants(micro_run):
    alone = load_verifier(micro_run / "verifier")
    assert alone.variants == ["V-STaR", "V-STaR (mean log-prob)"]
    assert alone.score("1 2 -> 3\n", ["1+2=3"])[0] < 0
    with pytest.raises(VstarError, match="G_SFT not given"):
        alone.score("1 2 -> 3\n", ["1+2=3"], variant="V-STaR (DPO reward)")
    with pytest.raises(VstarError, match="needs a generator"):
        alone.best_of_n(["1 2 -> 3\n"], 2)
    alone.close()


def test_bad_arguments_fail_clearly(micro_verifier, tmp_path):
    with pytest.raises(VstarError, match="'nope': not one of"):
        micro_verifier.score("p", ["c"], variant="nope")
    with pytest.raises(VstarError, match="list of strings, got one string"):
        micro_verifier.score("p", "c")
    with pytest.raises(VstarError, match="completions\\[1\\]: expected a string"):
        micro_verifier.score("p", ["c", 3])
    with pytest.raises(VstarError, match="a list of 2 of them"):
        micro_verifier.score("p", ["c", "d"], finished=[True])
    with pytest.raises(VstarError, match="2 prompts, 1 completions and 1 finished flags"):
        micro_verifier.score_pairs(["p", "q"], ["c"], [True])
    with pytest.raises(VstarError, match="finished\\[0\\]: expected true or false"):
        micro_verifier.score_pairs(["p"], ["c"], [1])
    with pytest.raises(VstarError, match="prompts: expected a list of strings, got one string"):
        micro_verifier.best_of_n("p", 2)
    with pytest.raises(VstarError, match="positive integer"):
        micro_verifier.best_of_n(["p"], 0)
    with pytest.raises(VstarError, match="no such directory"):
        load_verifier(tmp_path / "missing")
    (tmp_path / "config.yaml").write_text("run: {iterations: 1}\n")
    with pytest.raises(VstarError, match="no trained verifier"):
        load_verifier(tmp_path)


def test_importing_the_api_loads_no_torch_and_no_web_framework():
    code = ("import sys, vstar.serve, vstar.serve.files, vstar.serve.inputs; "
            "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_metrics_rank_by_the_same_variants():
    from vstar.evaluation import tables

    assert tables.score_variants is score_variants
    columns = {"verifier_logp_sum": [-3.0, -8.0], "sft_logp_sum": [-4.0, -6.0], "generator_logp_sum": [-5.0, -5.0],
               "tokens": [2, 0]}
    got = score_variants(columns, beta=0.5)
    assert list(got) == [name for name in VARIANT_COLUMNS if name not in ("ORM", "GenRM")]
    assert got["V-STaR (DPO reward)"].tolist() == [0.5, -1.0]
    assert got["V-STaR (mean log-prob)"].tolist() == [-1.5, -8.0]  # no tokens: divided by 1


def test_a_runs_task_gives_best_of_n_its_stop_strings(shared_data, tmp_path):
    from vstar.config import load_config
    from vstar.serve.verifier import task_stop
    from vstar.tasks.jsonl import MATH_STOP

    gsm8k = load_config(None, ["task.name=gsm8k", f"task.options.data_dir={shared_data / 'gsm8k'}"])
    assert task_stop(gsm8k) == tuple(MATH_STOP) and MATH_STOP
    custom = tmp_path / "rows.jsonl"
    custom.write_text('{"id": "a", "question": "1+1?", "answer": "2", "solution": " 2"}\n')
    jsonl = load_config(None, ["task.name=jsonl", f"task.options.path={custom}", "task.options.stop=['###']",
                               "task.options.test_fraction=0.5"])
    assert task_stop(jsonl) == ("###",)  # built from the run's options, not the class default
    missing = load_config(None, ["task.name=gsm8k", "task.options.data_dir=/nonexistent"])
    assert task_stop(missing) == tuple(MATH_STOP)  # data elsewhere: still the task's stop strings
