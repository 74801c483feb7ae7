"""Multi-process training under ``accelerate launch``: the command, the stage spec, and real runs.

The real runs use two CPU processes (gloo), so they work on any machine; on GPUs the same
command starts one process per GPU (NCCL).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from vstar.config import ExecutionSection, GeneratorSection, VerifierSection
from vstar.errors import VstarError
from vstar.training.launch import accelerate_command, main, read_spec, write_spec

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = [{"prompt": f"{i} {i + 1} -> {2 * i + 1}\n", "completion": f"{i}+{i + 1}={2 * i + 1}\n"} for i in range(1, 9)]


def test_command_without_a_config_file_is_plain_data_parallel(tmp_path):
    command = accelerate_command(tmp_path / "stage.json", ExecutionSection(num_processes=4))
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "4"
    assert "--multi_gpu" in command and "--config_file" not in command
    assert command[-3:] == ["-m", "vstar.training.launch", str(tmp_path / "stage.json")]


@pytest.mark.parametrize("name", ["ddp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml"])
def test_command_with_a_config_file_passes_it_on(tmp_path, name):
    config_file = REPO / "configs" / "accelerate" / name
    command = accelerate_command(tmp_path / "s.json", ExecutionSection(num_processes=8, accelerate_config=str(config_file)))
    assert command[command.index("--config_file") + 1] == str(config_file.resolve())
    assert "--multi_gpu" not in command  # the config file says how to distribute


def test_a_missing_accelerate_config_is_named(tmp_path):
    with pytest.raises(VstarError, match="execution.accelerate_config: .*nope.yaml"):
        accelerate_command(tmp_path / "s.json", ExecutionSection(num_processes=2, accelerate_config="nope.yaml"))


def test_the_stage_spec_round_trips(tmp_path):
    train = VerifierSection(method="lora", beta=0.3, epochs=1.0)
    spec_file = write_spec(tmp_path, "dpo", str(tmp_path), EXAMPLES, tmp_path / "out", train, 5, "bfloat16")
    spec = read_spec(spec_file)
    assert spec["train"] == train and spec["records"] == EXAMPLES
    assert (spec["kind"], spec["seed"], spec["dtype"]) == ("dpo", 5, "bfloat16")
    assert Path(spec["out_dir"]).is_absolute() and Path(spec["model_path"]).is_absolute()
    assert write_spec(tmp_path, "sft", "org/hub-model", [], tmp_path, GeneratorSection(), 0, "float32")
    assert read_spec(tmp_path / "stage.json")["model_path"] == "org/hub-model"  # hub ids stay as they are


def test_a_broken_spec_is_an_error_naming_the_file(tmp_path, capsys):
    spec_file = tmp_path / "stage.json"
    spec_file.write_text(json.dumps({"kind": "sft", "train_class": "os", "train": {}}))
    with pytest.raises(VstarError, match="stage.json: not a valid vstar stage spec"):
        read_spec(spec_file)
    assert main([str(spec_file)]) == 2
    assert "not a valid vstar stage spec" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.slow  # two processes x (import torch + TRL) per stage: about 30-40 s each on 2 CPU cores
@pytest.mark.parametrize("method", ["full", "lora"])
def test_sft_then_dpo_in_two_processes(tmp_path, method):
    from vstar.models.tiny import TinyModelSpec, build_tiny_model
    from vstar.training.dpo import train_dpo
    from vstar.training.sft import train_sft

    base = build_tiny_model(tmp_path / "base", TinyModelSpec(32, 2, 2, 64, 128), seed=0)
    execution = ExecutionSection(num_processes=2)
    summary = train_sft(str(base), EXAMPLES, tmp_path / "sft", GeneratorSection(epochs=2, batch_size=2, method=method),
                        0, execution=execution)
    assert summary["examples"] == 8 and summary["steps"] == 4  # 8 / (2 per process x 2 processes) x 2 epochs
    weights = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    assert (tmp_path / "sft" / weights).exists() and (tmp_path / "sft" / "tokenizer.json").exists()
    pairs = [{"prompt": e["prompt"], "chosen": e["completion"], "rejected": "1+1=3\n"} for e in EXAMPLES]
    sft_dir = tmp_path / "sft"  # a LoRA adapter dir: the loader merges it into G_SFT
    summary = train_dpo(str(sft_dir), pairs, tmp_path / "verifier", VerifierSection(epochs=1, batch_size=2, method=method),
                        0, execution=execution)
    assert summary["pairs"] == 8 and summary["steps"] == 2
    assert (tmp_path / "verifier" / weights).exists()
    assert not list(tmp_path.glob(".*.launch-*"))  # the stage specs are cleaned up
