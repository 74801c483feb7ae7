"""Bad input, end to end through ``vstar run``: one clear message naming the file and the line or
field, exit code 2, no traceback (unless --debug), and no run directory left behind."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vstar.cli import main
from vstar.errors import VstarError

REPO = Path(__file__).resolve().parents[1]
MATH_ROW = {"question": "What is 2+3?", "answer": "5", "solution": "2+3=5. The answer is 5."}


def _rows(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _math_rows(ids) -> list[dict]:
    return [{"id": i, **MATH_ROW} for i in ids]


def _jsonl_config(tmp_path: Path, train: Path, test: Path | None = None, extra: str = "") -> Path:
    options = {"path": str(train)}
    if test is not None:
        options["test_path"] = str(test)
    config = tmp_path / "config.yaml"
    config.write_text(f"run: {{name: bad, root: {tmp_path / 'runs'}}}\n"
                      f"task: {{name: jsonl, options: {json.dumps(options)}}}\n{extra}")
    return config


def _fails(capsys, argv: list[str], *expected: str) -> str:
    """Run the CLI; it must exit with 2 and end with one line holding every ``expected`` text."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    message = err.splitlines()[-1]
    assert message.startswith("vstar: error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in message, message
    return message


def _no_run_dir(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert not runs.exists() or list(runs.iterdir()) == [], list(runs.rglob("*"))


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        ("sampling: {temprature: 0.5}\n", ["sampling.temprature: unknown setting. Did you mean 'temperature'?"]),
        ("samplng: {k: 2}\n", ["unknown section 'samplng'. Did you mean 'sampling'?"]),
        ("sampling: {k: many}\n", ["sampling.k: expected int, got str 'many'"]),
        ("eval: {n_candidates: 4, table_k: 8}\n", ["eval.table_k: k=8 exceeds eval.n_candidates=4"]),
        ("eval: {n_candidates: 4, table_k: 4, ks: [1, 8]}\n", ["eval.ks: each k must be an integer in 1..eval.n_candidates=4"]),
        ("sampling: {temperature: -0.5}\n", ["sampling.temperature: expected a value >= 0, got -0.5"]),
        ("verifier: {max_pairs_per_problem: 0}\n", ["verifier.max_pairs_per_problem: expected a value >= 1, got 0"]),
        ("sampling: {top_p: .nan}\n", ["sampling.top_p: expected a finite number"]),
        ("run: {name: x}\nsampling:\n  k: 4\n   temperature: 1\n", ["is not valid YAML: line 4, column 15"]),
        ("- just\n- a list\n", ["expected a mapping of sections"]),
        ("task: {name: jsonl}\n", ["task.options.path: expected the path of a .jsonl"]),  # required field
        ("task: {name: embeded}\n", ["unknown task 'embeded'", "Did you mean 'embedded'?"]),
    ],
)
def test_bad_config_is_named(tmp_path, capsys, yaml_text, expected):
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text)
    argv = ["run", "--config", str(config), "--run-dir", str(tmp_path / "runs" / "r")]
    message = _fails(capsys, argv, *expected)
    if "task" not in yaml_text:
        assert str(config) in message  # config problems name the file
    _no_run_dir(tmp_path)


def test_bad_override_is_named(tmp_path, capsys):
    argv = ["run", "--set", "sampling.k=0", "--run-dir", str(tmp_path / "runs" / "r")]
    _fails(capsys, argv, "defaults + --set: sampling.k: expected a value >= 1, got 0")
    _fails(capsys, ["run", "--set", "sampling.k", "--run-dir", str(tmp_path / "runs" / "r")],
           "expected section.field=value")
    _fails(capsys, ["run", "--config", str(tmp_path / "nope.yaml")], "config file", "nope.yaml' does not exist")
    _no_run_dir(tmp_path)


# ---------------------------------------------------------------- data (the jsonl task)


def test_missing_data_file(tmp_path, capsys):
    config = _jsonl_config(tmp_path, tmp_path / "train.jsonl")
    _fails(capsys, ["run", "--config", str(config)], f"{tmp_path / 'train.jsonl'}: file not found")
    _no_run_dir(tmp_path)


def test_empty_data_file(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text("\n")
    _fails(capsys, ["run", "--config", str(_jsonl_config(tmp_path, train))], f"{train}: the file holds no rows")
    _no_run_dir(tmp_path)


def test_malformed_json_line(tmp_path, capsys):
    train = _rows(tmp_path / "train.jsonl", [*_math_rows(["a", "b"]), '{"id": "c", "question": "x",'])
    _fails(capsys, ["run", "--config", str(_jsonl_config(tmp_path, train))], f"{train} line 3: malformed JSON")
    _no_run_dir(tmp_path)


def test_missing_field(tmp_path, capsys):
    rows = _math_rows(["a", "b"]) + [{"id": "c", "question": "What is 1+1?"}]
    train = _rows(tmp_path / "train.jsonl", rows)
    _fails(capsys, ["run", "--config", str(_jsonl_config(tmp_path, train))],
           f"{train} line 3: missing field 'answer'")
    _no_run_dir(tmp_path)


def test_duplicate_ids(tmp_path, capsys):
    train = _rows(tmp_path / "train.jsonl", _math_rows(["a", "b", "a"]))
    _fails(capsys, ["run", "--config", str(_jsonl_config(tmp_path, train))],
           f"{train} line 3: field 'id': duplicate id 'a' (first at {train} line 1)")
    _no_run_dir(tmp_path)


def test_test_split_overlapping_train(tmp_path, capsys):
    train = _rows(tmp_path / "train.jsonl", _math_rows(["a", "b"]))
    test = _rows(tmp_path / "test.jsonl", _math_rows(["c", "b"]))
    _fails(capsys, ["run", "--config", str(_jsonl_config(tmp_path, train, test))],
           f"{test} line 2: field 'id': test id 'b' is also a training row ({train} line 2)")
    _no_run_dir(tmp_path)


def test_no_gold_solutions(tmp_path, capsys):
    rows = [{"id": i, "question": "What is 2+3?", "answer": "5"} for i in "abc"]
    train = _rows(tmp_path / "train.jsonl", rows)
    test = _rows(tmp_path / "test.jsonl", _math_rows(["t"]))
    _fails(capsys, ["run", "--config", str(_jsonl_config(tmp_path, train, test))],
           "the sft split has no problems with a gold solution")
    _no_run_dir(tmp_path)


def test_empty_test_split(tmp_path, capsys):
    train = _rows(tmp_path / "train.jsonl", _math_rows(["a", "b"]))
    _fails(capsys, ["run", "--config", str(_jsonl_config(tmp_path, train))], "the test split has no problems")
    _no_run_dir(tmp_path)


# ---------------------------------------------------------------- model


def _model_config(tmp_path: Path, base: Path) -> list[str]:
    return ["run", "--set", f"model.base={base}", "--set", f"run.root={tmp_path / 'runs'}"]


def test_missing_checkpoint_path(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    _fails(capsys, _model_config(tmp_path, missing), f"model.base '{missing}': no such directory")
    _no_run_dir(tmp_path)


def test_directory_that_is_not_a_model(tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    _fails(capsys, _model_config(tmp_path, folder), f"model.base '{folder}': not a model directory (no config.json)")
    (folder / "config.json").write_text("{}")
    _fails(capsys, _model_config(tmp_path, folder), f"model.base '{folder}': no weights in the folder")
    _no_run_dir(tmp_path)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from vstar.models.tiny import TinyModelSpec, build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny", TinyModelSpec(16, 1, 2, 32, 64))


def _without_special_tokens(source: Path, target: Path, drop: tuple[str, ...], drop_config_eos: bool) -> Path:
    """A copy of ``source`` whose tokenizer (and, optionally, model config) lacks some special tokens."""
    import shutil

    shutil.copytree(source, target)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = target / name
        if path.exists():
            data = json.loads(path.read_text())
            for token in drop:
                data.pop(token, None)
            path.write_text(json.dumps(data))
    if drop_config_eos:
        config = json.loads((target / "config.json").read_text())
        config["eos_token_id"] = None
        (target / "config.json").write_text(json.dumps(config))
        generation = target / "generation_config.json"
        generation.unlink(missing_ok=True)
    return target


def test_tokenizer_without_pad_or_eos_is_fixed_from_the_model_config(tiny_model, tmp_path):
    from vstar.models.load import load_tokenizer

    copy = _without_special_tokens(tiny_model, tmp_path / "m", ("eos_token", "pad_token"), drop_config_eos=False)
    tokenizer = load_tokenizer(str(copy))
    assert tokenizer.eos_token == "</s>" and tokenizer.pad_token == "</s>"
    assert tokenizer.padding_side == "left"


def test_tokenizer_without_any_eos_says_how_to_fix_it(tiny_model, tmp_path, capsys):
    copy = _without_special_tokens(tiny_model, tmp_path / "m", ("eos_token",), drop_config_eos=True)
    _fails(capsys, _model_config(tmp_path, copy), f"tokenizer at '{copy}' has no eos_token",
           "tokenizer.eos_token = '</s>'", "save_pretrained")
    _no_run_dir(tmp_path)


# ---------------------------------------------------------------- resources


def test_disk_full_while_writing(tmp_path, capsys, monkeypatch):
    """A full disk at the first write: a clear message, and no half-made run directory."""

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    run_dir = tmp_path / "runs" / "r"
    _fails(capsys, ["run", "--set", "task.options={n_sft: 4, n_query: 4, n_test: 2}", "--run-dir", str(run_dir)],
           f"cannot write '{run_dir / 'config.yaml'}': no space left on device", "--resume")
    _no_run_dir(tmp_path)


def test_resource_errors_inside_a_stage_are_named(tmp_path):
    """An OSError from a library inside a stage (e.g. torch.save) becomes a VstarError naming the stage."""
    from vstar.pipeline import _stage
    from vstar.rundir import RunDir

    run = RunDir(tmp_path / "run")

    def work():
        raise OSError(errno.ENOSPC, "No space left on device", str(run.root / "sft.tmp" / "optimizer.pt"))

    with pytest.raises(VstarError, match=r"stage sft: no space left on device \('.*optimizer.pt'\)"):
        _stage(run, "sft", "key", work, [run.sft])
    assert not run.marker("sft").exists()


def test_run_directory_that_cannot_be_created(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fails(capsys, ["run", "--run-dir", str(blocker / "run"), "--set", "task.options={n_sft: 4, n_query: 4, n_test: 2}"],
           f"run directory '{blocker / 'run'}' cannot be created: Not a directory")


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


def test_run_directory_not_writable(tmp_path, capsys):
    folder = tmp_path / "locked"
    mounted = _mount_tmpfs(folder, "ro,size=64k")
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores permissions and tmpfs cannot be mounted here")
        folder.chmod(0o500)
    try:
        _fails(capsys, ["run", "--run-dir", str(folder), "--set", "task.options={n_sft: 4, n_query: 4, n_test: 2}"],
               f"run directory '{folder}' is not writable")
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        else:
            folder.chmod(0o700)


@pytest.mark.slow
def test_disk_full_on_a_real_small_disk(tmp_path):
    """The micro run on a 96 KB tmpfs: it fails writing the model, says so, and resumes once there is room."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=96k"):
        pytest.skip("needs root and tmpfs")
    try:
        run_dir = disk / "run"
        result = subprocess.run([sys.executable, "-m", "vstar.cli", "run", "--config", str(REPO / "configs" / "micro.yaml"),
                                 "--run-dir", str(run_dir)], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("vstar: error: ") and ("no space left" in last or "is full" in last), last
        assert "--resume" in last
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ---------------------------------------------------------------- the command line itself


def test_no_traceback_but_one_with_debug(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("sampling: {k: -1}\n")
    command = [sys.executable, "-m", "vstar.cli"]
    plain = subprocess.run([*command, "run", "--config", str(config)], cwd=tmp_path, capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr == f"vstar: error: {config}: sampling.k: expected a value >= 1, got -1.\n"
    debug = subprocess.run([*command, "--debug", "run", "--config", str(config)], cwd=tmp_path,
                           capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "VstarError" in debug.stderr
    assert not (tmp_path / "runs").exists()


def test_a_failed_first_run_leaves_a_directory_a_later_run_accepts(tmp_path, capsys):
    """A run killed or failed before any stage finished may leave files; a later run takes the folder."""
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("# left by a killed run\n")
    train = _rows(tmp_path / "train.jsonl", _math_rows(["a"]))
    config = _jsonl_config(tmp_path, train)  # fails: no test split
    _fails(capsys, ["run", "--config", str(config), "--run-dir", str(run_dir)], "the test split has no problems")
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]  # an existing folder is left as it was


def test_resume_of_a_folder_without_a_config(tmp_path, capsys):
    folder = tmp_path / "runs" / "r"
    folder.mkdir(parents=True)
    _fails(capsys, ["run", "--resume", str(folder)], f"--resume {folder}: no config.yaml in it")
    _fails(capsys, ["run", "--resume", str(tmp_path / "nothing")], "no such run directory")


def test_an_unknown_transfer_task_fails_before_any_training(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["run", "--config", str(REPO / "configs" / "micro.yaml"), "--run-dir", str(run_dir), "--set", "eval.transfer={humaneva: {}}"])
    assert code == 2
    assert "humaneva" in capsys.readouterr().err
    assert not (run_dir / "sft").exists()
