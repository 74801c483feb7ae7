"""Property tests for config parsing: valid configs survive a trip through YAML and through
``--set`` overrides, and no input, however odd, fails with anything but a VstarError."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vstar.config import Config, dump_yaml, from_dict, load_config, parse_override
from vstar.errors import VstarError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
plain_values = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12) | \
    st.floats(allow_nan=False, allow_infinity=False, width=32)
option_values = st.recursive(plain_values, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@st.composite
def valid_settings(draw) -> dict:
    """A nested dict of settings that passes validation (a random subset of fields, valid values)."""
    n_candidates = draw(st.integers(1, 256))
    heads = draw(st.sampled_from([1, 2, 4]))
    data = {
        "run": {"name": draw(names), "seed": draw(st.integers(0, 2**31 - 1)), "iterations": draw(st.integers(1, 5)),
                "threads": draw(st.integers(0, 64))},
        "task": {"options": draw(st.dictionaries(names, option_values, max_size=4))},
        "model": {"dtype": draw(st.sampled_from(["float32", "bfloat16", "float16"])), "tiny_heads": heads,
                  "tiny_hidden_size": heads * 2 * draw(st.integers(1, 64)), "tiny_layers": draw(st.integers(1, 8))},
        "sampling": {"k": draw(st.integers(1, 64)), "temperature": draw(st.floats(0, 5)),
                     "top_p": draw(st.floats(0.01, 1)), "max_new_tokens": draw(st.integers(1, 4096))},
        "eval": {"n_candidates": n_candidates, "table_k": draw(st.integers(1, n_candidates)),
                 "ks": draw(st.lists(st.integers(1, n_candidates), max_size=5))},
        "verifier": {"beta": draw(st.floats(0, 10)), "heldout_fraction": draw(st.floats(0, 0.99)),
                     "max_pairs_per_problem": draw(st.integers(1, 100)), "method": draw(st.sampled_from(["full", "lora"]))},
        "generator": {"learning_rate": draw(st.floats(1e-8, 1)), "epochs": draw(st.floats(0.01, 100)),
                      "max_steps": draw(st.integers(0, 10**6))},
    }
    chosen = draw(st.lists(st.sampled_from(sorted(data)), unique=True))
    return {section: data[section] for section in chosen}


def _as_overrides(data: dict) -> list[str]:
    """``--set`` strings that say the same as ``data``."""
    overrides = []
    for section, values in data.items():
        for name, value in values.items():
            text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
            text = text.removesuffix("\n...").strip()
            overrides.append(f"{section}.{name}={text}")
    return overrides


@SETTINGS
@given(valid_settings())
def test_valid_settings_round_trip_through_yaml(tmp_path_factory, data):
    config = from_dict(data)
    path = tmp_path_factory.getbasetemp() / "round_trip.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(path) == config


@SETTINGS
@given(valid_settings())
def test_overrides_say_the_same_as_a_file(data):
    assert load_config(None, _as_overrides(data)) == from_dict(data)


@SETTINGS
@given(st.text(max_size=60))
def test_any_override_string_gives_a_config_or_a_vstar_error(text):
    try:
        assert isinstance(load_config(None, [text]), Config)
    except VstarError:
        pass


FIELDS = [f"{section.name}.{f.name}" for section in dataclasses.fields(Config)
          for f in dataclasses.fields(getattr(Config(), section.name))]


@SETTINGS
@given(st.sampled_from(FIELDS + ["run", "run.name.x", "task.options.a.b", "nosuch.k"]), st.text(max_size=30))
def test_any_value_for_a_known_field_gives_a_config_or_a_one_line_vstar_error(field, raw):
    try:
        load_config(None, [f"{field}={raw}"])
    except VstarError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(st.text(max_size=200))
def test_any_config_file_gives_a_config_or_a_vstar_error(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "any.yaml"
    path.write_text(text)
    try:
        load_config(path, ["run.name=x"])
    except VstarError as exc:
        assert str(path) in str(exc) or "--set" in str(exc)


documents = st.recursive(plain_values, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4), max_leaves=12)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["run", "task", "model", "sampling", "eval", "verifier", "x"]), documents,
                       max_size=4))
def test_any_parsed_document_gives_a_config_or_a_vstar_error(data):
    try:
        from_dict(data)
    except VstarError:
        pass


@pytest.mark.parametrize("text, expected", [
    ("a.b=1", (["a", "b"], 1)),
    ("a.b='1'", (["a", "b"], "1")),
    ("a.b=[1, 2]", (["a", "b"], [1, 2])),
    ("a.b=", (["a", "b"], "")),
    ("a.b=x=y", (["a", "b"], "x=y")),
])
def test_parse_override_examples(text, expected):
    assert parse_override(text) == expected
