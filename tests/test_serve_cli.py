"""`vstar score` and `vstar best-of-n` on the session's micro run: the run's own numbers, both
input shapes, file/line/field errors, resuming from complete chunks, labels from --task."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vstar.cli import main
from vstar.config import load_config
from vstar.rundir import read_jsonl
from vstar.serve import Verifier
from vstar.serve.files import best_of_n_file, partial_path, score_file
from vstar.serve.inputs import score_rows
from vstar.tasks import get_task


def write_rows(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_score_command_gives_the_runs_scores(micro_run, tmp_path, capsys):
    out = tmp_path / "scored.jsonl"
    candidates = micro_run / "eval" / "candidates.jsonl"
    assert main(["score", "--run", str(micro_run), "--input", str(candidates), "--out", str(out)]) == 0
    assert "scored 64 completions (64 input rows) by 'V-STaR'" in capsys.readouterr().out
    expected = {(s["problem_id"], s["sample_index"]): s["verifier_logp_sum"]
                for s in read_jsonl(micro_run / "eval" / "scores.jsonl")}
    scored = read_jsonl(out)
    assert [r["completion"] for r in scored] == [c["completion"] for c in read_jsonl(candidates)]
    final = [r for r in scored if r["source"] == "final"]
    assert len(final) == len(expected) == 32
    for row in final:
        assert row["score"] == pytest.approx(expected[(row["problem_id"], row["sample_index"])], abs=1e-4)
        assert row["variant"] == "V-STaR"
    assert not partial_path(out).exists()


def test_grouped_rows_get_scores_and_the_best(micro_run, micro_verifier, tmp_path):
    prompt, completions = "2 5 2 3 -> 6\n", ["5+2=7\n7-3=4\n", "?", "2+5=7\n"]
    source = write_rows(tmp_path / "in.jsonl", [
        {"prompt": prompt, "completions": completions, "id": "a"},
        {"prompt": prompt, "completions": completions, "finished": [True, False, True]},
        {"prompt": prompt, "completion": "?", "finished": False},
    ])
    out = tmp_path / "out.jsonl"
    args = ["score", "--run", str(micro_run), "--input", source, "--out", str(out), "--variant", "V-STaR (DPO reward)"]
    assert main(args) == 0
    first, second, flat = read_jsonl(out)
    assert first["id"] == "a" and first["finished"] == [True, True, True]
    assert first["scores"] == pytest.approx(micro_verifier.score(prompt, completions, variant="V-STaR (DPO reward)"), abs=1e-4)
    assert first["best"] == max(range(3), key=lambda i: first["scores"][i])
    assert second["scores"][1] == pytest.approx(flat["score"], abs=1e-6)  # an unfinished '?', either shape
    assert second["scores"][1] != pytest.approx(first["scores"][1], abs=1e-6)


@pytest.mark.parametrize("line, problem", [
    ("{not json", "line 2: malformed JSON"),
    ('["a list"]', "line 2: expected a JSON object"),
    ('{"completions": ["x"]}', "line 2: field 'prompt': expected a string, got missing"),
    ('{"prompt": "p", "completions": "x"}', "line 2: field 'completions': expected a list of strings, got a str"),
    ('{"prompt": "p", "completions": ["x", 2]}', "line 2: field 'completions[1]': expected a string, got a int"),
    ('{"prompt": "p", "completions": ["x"], "finished": [true, false]}', "line 2: field 'finished': expected true/false or a list of 1"),
    ('{"prompt": "p", "completion": "x", "finished": "yes"}', "line 2: field 'finished': expected true or false"),
    ('{"prompt": "p"}', "line 2: expected field 'completions' (a list of strings) or 'completion'"),
])
def test_a_malformed_row_fails_naming_file_line_and_field(micro_run, tmp_path, capsys, line, problem):
    source = write_rows(tmp_path / "bad.jsonl", [{"prompt": "p", "completions": ["x"]}, line])
    out = tmp_path / "out.jsonl"
    assert main(["score", "--run", str(micro_run), "--input", source, "--out", str(out)]) == 2
    assert f"vstar: error: {source} {problem}" in capsys.readouterr().err
    assert not out.exists() and not partial_path(out).exists()


def test_unknown_variant_and_missing_run_exit_2(micro_run, tmp_path, capsys):
    source = write_rows(tmp_path / "in.jsonl", [{"prompt": "p", "completion": "x"}])
    out = str(tmp_path / "out.jsonl")
    assert main(["score", "--run", str(micro_run), "--input", source, "--out", out, "--variant", "ORM"]) == 2
    assert "score variant 'ORM': not one of" in capsys.readouterr().err
    assert main(["score", "--run", str(tmp_path / "nowhere"), "--input", source, "--out", out]) == 2
    assert "no such directory" in capsys.readouterr().err


class Interrupt(Exception):
    pass


def stop_after(verifier, method: str, calls: int, monkeypatch) -> list:
    """Let ``verifier.<method>`` run ``calls`` times, then raise Interrupt (a killed command); returns
    the list of calls made."""
    real, made = getattr(verifier, method), []

    def counted(*args, **kwargs):
        if len(made) == calls:
            raise Interrupt
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(verifier, method, counted)
    return made


def test_score_file_resumes_from_its_complete_chunks(micro_run, micro_verifier, tmp_path, monkeypatch):
    rows = score_rows([(f"line {i}", c) for i, c in enumerate(read_jsonl(micro_run / "eval" / "candidates.jsonl"))])
    whole = score_file(micro_verifier, rows, tmp_path / "whole.jsonl", variant="V-STaR", chunk_sequences=16)
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as patch:
        stop_after(micro_verifier, "score_pairs", 2, patch)
        with pytest.raises(Interrupt):
            score_file(micro_verifier, rows, out, variant="V-STaR", chunk_sequences=16)
    assert len(read_jsonl(partial_path(out))) == 1 + 32  # the header, then two chunks of 16
    with monkeypatch.context() as patch:
        made = stop_after(micro_verifier, "score_pairs", 99, patch)
        assert score_file(micro_verifier, rows, out, variant="V-STaR", chunk_sequences=16) == whole
    assert len(made) == 2  # the last two of four chunks only
    assert read_jsonl(out) == whole and not partial_path(out).exists()
    other = tmp_path / "other.jsonl"
    with monkeypatch.context() as patch:
        stop_after(micro_verifier, "score_pairs", 1, patch)
        with pytest.raises(Interrupt):
            score_file(micro_verifier, rows, other, variant="V-STaR", chunk_sequences=16)
    with monkeypatch.context() as patch:  # another variant: the partial file made for the first is not used
        made = stop_after(micro_verifier, "score_pairs", 99, patch)
        score_file(micro_verifier, rows, other, variant="V-STaR (mean log-prob)", chunk_sequences=16)
    assert len(made) == 4


def test_best_of_n_resumes_to_the_picks_of_an_uninterrupted_run(micro_run, tmp_path, monkeypatch):
    small = Verifier.from_run(micro_run)
    small.settings = dataclasses.replace(small.settings, sampling_batch_size=4)  # chunks of 2 prompts at n=2
    rows = [{"prompt": p.prompt, "problem_id": p.id} for p in get_task("embedded", {"n_test": 6}).problems("test")]
    settings = dict(n=2, variant="V-STaR", seed=3, max_new_tokens=10)
    whole = best_of_n_file(small, rows, tmp_path / "whole.jsonl", **settings)
    out = tmp_path / "picks.jsonl"
    with monkeypatch.context() as patch:
        stop_after(small, "best_of_n", 2, patch)
        with pytest.raises(Interrupt):
            best_of_n_file(small, rows, out, **settings)
    with monkeypatch.context() as patch:
        made = stop_after(small, "best_of_n", 99, patch)
        assert best_of_n_file(small, rows, out, **settings) == whole
    assert len(made) == 1 and len(whole) == 6
    assert [r["problem_id"] for r in whole] == [r["problem_id"] for r in rows]
    small.close()


def test_best_of_n_with_a_task_labels_the_picks(micro_run, tmp_path, capsys):
    out = tmp_path / "picks.jsonl"
    args = ["best-of-n", "--run", str(micro_run), "--task", "embedded", "--n", "2", "--out", str(out),
            "--max-new-tokens", "16"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    picks = read_jsonl(out)
    task = get_task("embedded", load_config(micro_run / "config.yaml").task.options)
    problems = task.problems("test")
    assert [p["problem_id"] for p in picks] == [p.id for p in problems]
    for pick, problem in zip(picks, problems):
        assert len(pick["candidates"]) == 2 and pick["completion"] == pick["candidates"][pick["best"]]["completion"]
        assert pick["correct"] == task.check(problem, pick["completion"]).correct == pick["label"]["correct"]
    correct = sum(p["correct"] for p in picks)
    assert f"accuracy of the picks (embedded): {correct}/8 = {correct / 8:.3f}" in printed


def test_best_of_n_keeps_the_input_fields_and_checks_rows(micro_run, tmp_path, capsys):
    source = write_rows(tmp_path / "prompts.jsonl", [{"prompt": "1 2 -> 3\n", "id": 7}, {"prompt": "4 4 -> 8\n"}])
    out = tmp_path / "picks.jsonl"
    assert main(["best-of-n", "--run", str(micro_run), "--input", source, "--n", "2", "--out", str(out),
                 "--max-new-tokens", "8"]) == 0
    first, second = read_jsonl(out)
    assert first["id"] == 7 and first["prompt"] == "1 2 -> 3\n" and "correct" not in first
    assert "best-of-2 by 'V-STaR' for 2 prompts" in capsys.readouterr().out
    bad = write_rows(tmp_path / "bad.jsonl", [{"prompt": "1 2 -> 3\n"}, {"question": "x"}])
    assert main(["best-of-n", "--run", str(micro_run), "--input", bad, "--n", "2", "--out", str(out)]) == 2
    assert f"{bad} line 2: field 'prompt': expected a string, got missing" in capsys.readouterr().err
    assert main(["best-of-n", "--run", str(micro_run), "--input", source, "--task", "embedded", "--n", "2",
                 "--out", str(out)]) == 2
    assert f"{source} line 1: field prompt: no problem of task 'embedded' has it" in capsys.readouterr().err
