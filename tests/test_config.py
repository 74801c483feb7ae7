"""Config loading: defaults, YAML, --set overrides, and clear errors."""

import pytest

from vstar.config import Config, describe, dump_yaml, load_config, parse_override
from vstar.errors import VstarError


def test_defaults_follow_the_paper_where_it_matters():
    config = load_config()
    assert config.run.iterations == 3
    assert config.sampling.k == 16
    assert config.task.name == "embedded" and config.model.base == "embedded"


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sampling:\n  k: 4\n  temperature: 0.5\nrun:\n  name: x\n")
    config = load_config(path, ["sampling.k=8", "task.options={n_sft: 3}", "verifier.beta=1"])
    assert config.sampling.k == 8 and config.sampling.temperature == 0.5
    assert config.run.name == "x"
    assert config.task.options == {"n_sft": 3}
    assert config.verifier.beta == 1.0 and isinstance(config.verifier.beta, float)


def test_round_trip_through_yaml(tmp_path):
    config = load_config(None, ["sampling.k=3", "eval.ks=[1, 2]"])
    path = tmp_path / "again.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(path) == config


@pytest.mark.parametrize(
    "override, message",
    [
        (["sampling.kk=3"], "sampling.kk: unknown setting. Did you mean 'k'?"),
        (["samplng.k=3"], "unknown section 'samplng'. Did you mean 'sampling'?"),
        (["sampling.k=many"], "sampling.k: expected int, got str 'many'"),
        (["sampling.temperature=-0.1"], "sampling.temperature: expected a value >= 0"),
        (["eval.table_k=64"], "eval.table_k: k=64 exceeds eval.n_candidates=32"),
        (["verifier.max_pairs_per_problem=0"], "verifier.max_pairs_per_problem: expected a value >= 1"),
        (["sampling.backend=tgi"], "sampling.backend: expected one of transformers, vllm"),
        (["generator.epochs=yes"], "generator.epochs: expected float, got bool"),
        (["k=3"], "expected section.field=value"),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(VstarError) as info:
        load_config(None, override)
    assert message in str(info.value)


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("sampling: [k: 1\n")
    with pytest.raises(VstarError, match="broken.yaml' is not valid YAML"):
        load_config(path)
    with pytest.raises(VstarError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_parse_override_reads_yaml_scalars():
    assert load_config(None, ["generator.learning_rate=1e-3"]).generator.learning_rate == 1e-3
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("a.b=hello") == (["a", "b"], "hello")


def test_describe_lists_every_field():
    text = describe()
    for field in ("iterations", "max_pairs_per_problem", "n_candidates", "top_p"):
        assert field in text
    assert isinstance(Config(), Config)
