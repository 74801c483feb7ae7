"""Configuration: frozen dataclasses, each field documented once.

Sources, later ones winning: the defaults below, a YAML file (``--config``),
then ``--set section.field=value`` overrides. Every value is type-checked and
range-checked; a mistake raises ``VstarError`` naming the source and the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vstar.errors import VstarError


def doc(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its documentation attached."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class RunSection:
    name: str = doc("run name; the run directory is <root>/<name>", "default")
    root: str = doc("folder that holds run directories", "runs")
    seed: int = doc("seed for sampling, training and data order", 0)
    iterations: int = doc("V-STaR iterations T (paper: 3)", 3)
    threads: int = doc("torch CPU threads (0 = torch's default)", 0)


@dataclass(frozen=True)
class TaskSection:
    name: str = doc("task name: embedded, gsm8k, math500, mbpp, humaneval, jsonl", "embedded")
    options: dict = doc("task-specific options (see `vstar tasks`)", factory=dict)


@dataclass(frozen=True)
class ModelSection:
    base: str = doc("G_base: 'embedded' (tiny Llama built here), a local model dir or a hub id", "embedded")
    dtype: str = doc("float32, bfloat16 or float16", "float32")
    tiny_hidden_size: int = doc("embedded model: hidden size", 96)
    tiny_layers: int = doc("embedded model: transformer layers", 4)
    tiny_heads: int = doc("embedded model: attention heads", 4)
    tiny_intermediate_size: int = doc("embedded model: MLP width", 256)


@dataclass(frozen=True)
class TrainSection:
    """Shared by generator SFT and verifier DPO."""

    method: str = doc("'full' fine-tuning or 'lora'", "full")
    epochs: float = doc("passes over the training data", 3.0)
    learning_rate: float = doc("peak learning rate (linear decay, warmup below)", 1e-3)
    warmup_ratio: float = doc("fraction of steps spent warming up", 0.05)
    weight_decay: float = doc("AdamW weight decay", 0.0)
    batch_size: int = doc("examples per device per step", 64)
    grad_accum: int = doc("gradient accumulation steps", 1)
    max_length: int = doc("longest prompt+completion in tokens; longer ones are truncated", 256)
    lora_r: int = doc("LoRA rank (method=lora)", 16)
    lora_alpha: int = doc("LoRA alpha (method=lora)", 32)
    lora_dropout: float = doc("LoRA dropout (method=lora)", 0.05)
    lora_targets: str = doc("LoRA target modules, comma separated, or 'all-linear'", "all-linear")
    max_steps: int = doc("if > 0, an upper bound on optimizer steps (epochs are cut short to fit)", 0)


@dataclass(frozen=True)
class GeneratorSection(TrainSection):
    epochs: float = doc("passes over the training data", 40.0)
    learning_rate: float = doc("peak learning rate (linear decay, warmup below)", 3e-3)
    max_steps: int = doc("if > 0, an upper bound on optimizer steps (epochs are cut short to fit)", 600)


@dataclass(frozen=True)
class VerifierSection(TrainSection):
    epochs: float = doc("passes over the training pairs", 2.0)
    learning_rate: float = doc("peak learning rate (linear decay, warmup below)", 5e-4)
    beta: float = doc("DPO beta (strength of the KL tie to G_SFT)", 0.1)
    max_pairs_per_problem: int = doc("cap on correct x incorrect pairs per problem (paper: all)", 8)
    heldout_fraction: float = doc("share of problems whose pairs are held out to measure pair accuracy", 0.1)


@dataclass(frozen=True)
class SamplingSection:
    backend: str = doc("'transformers' (any machine) or 'vllm' (GPU, optional extra)", "transformers")
    k: int = doc("samples per query problem per iteration (paper: 16)", 16)
    temperature: float = doc("sampling temperature (>= 0; 0 = greedy)", 1.0)
    top_p: float = doc("nucleus sampling mass in (0, 1]", 1.0)
    max_new_tokens: int = doc("longest completion in tokens", 64)
    batch_size: int = doc("sequences generated together (prompts x samples)", 512)


@dataclass(frozen=True)
class EvalSection:
    n_candidates: int = doc("candidates N sampled per test problem (paper: 128)", 32)
    ks: list = doc("k values for the curves; empty = 1, 2, 4, ... up to N", factory=list)
    table_k: int = doc("k for the summary table (paper: 64 of 128)", 16)
    temperature: float = doc("test-time sampling temperature", 1.0)
    bootstrap: int = doc("bootstrap resamples for 95% confidence intervals", 1000)


@dataclass(frozen=True)
class BaselinesSection:
    """The paper's other methods, run from the same run directory (all off by default: they cost compute)."""

    rft: bool = doc("RFT: one iteration with iterations x k samples from G_SFT (same sampling budget)", False)
    vstar_1iter: bool = doc("V-STaR[1 iter]: a DPO verifier on the RFT samples only (needs rft)", False)
    orm: bool = doc("ORM verifier: G_SFT + scalar head, binary correctness loss on D_VER", False)
    genrm: bool = doc("generative verifier: G_SFT fine-tuned to answer 'Is the answer correct? Yes/No'", False)
    max_examples_per_problem: int = doc("ORM/GenRM: distinct labeled samples kept per problem", 16)


@dataclass(frozen=True)
class ExecutionSection:
    backend: str = doc("'local' (this process and its worker pools) or 'ray' (tasks/actors on a Ray cluster)", "local")
    address: str = doc("Ray cluster address ('auto' = a running cluster; '' = start a local instance)", "")
    num_workers: int = doc("Ray: sampling/scoring actors and labeling tasks to fan out over", 2)
    gpus_per_worker: float = doc("Ray: GPUs per sampling/scoring actor (0 on CPU)", 0.0)
    tensor_parallel_size: int = doc("vLLM: GPUs per model replica", 1)
    gpu_memory_utilization: float = doc("vLLM: fraction of GPU memory it may take", 0.85)
    num_processes: int = doc("training processes; > 1 starts `accelerate launch` (multi-GPU)", 1)
    accelerate_config: str = doc("accelerate config file for multi-GPU training (DDP, FSDP, DeepSpeed)", "")


@dataclass(frozen=True)
class Config:
    run: RunSection = field(default_factory=RunSection)
    task: TaskSection = field(default_factory=TaskSection)
    model: ModelSection = field(default_factory=ModelSection)
    generator: GeneratorSection = field(default_factory=GeneratorSection)
    verifier: VerifierSection = field(default_factory=VerifierSection)
    sampling: SamplingSection = field(default_factory=SamplingSection)
    eval: EvalSection = field(default_factory=EvalSection)
    execution: ExecutionSection = field(default_factory=ExecutionSection)
    baselines: BaselinesSection = field(default_factory=BaselinesSection)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.root) / self.run.name


# ---------------------------------------------------------------- loading


def _expected_type(cls: type, name: str) -> type:
    hint = typing.get_type_hints(cls)[name]
    return typing.get_origin(hint) or hint


def _coerce(value: Any, expected: type, where: str) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise VstarError(f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}.")
    return value


def _build_section(cls: type, values: dict, where: str) -> Any:
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            extra = f" Did you mean '{hint[0]}'?" if hint else ""
            raise VstarError(f"{where}.{key}: unknown setting.{extra} Known: {', '.join(known)}.")
        kwargs[key] = _coerce(value, _expected_type(cls, key), f"{where}.{key}")
    return cls(**kwargs)


def _section_classes() -> dict[str, type]:
    return {f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)}


def from_dict(data: dict, source: str = "config") -> Config:
    """Build and validate a Config from nested dicts (e.g. parsed YAML)."""
    if not isinstance(data, dict):
        raise VstarError(f"{source}: expected a mapping of sections, got {type(data).__name__}.")
    sections = _section_classes()
    built = {}
    for name, values in data.items():
        if name not in sections:
            hint = difflib.get_close_matches(name, sections, n=1)
            extra = f" Did you mean '{hint[0]}'?" if hint else ""
            raise VstarError(f"{source}: unknown section '{name}'.{extra} Known: {', '.join(sections)}.")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise VstarError(f"{source}: section '{name}' must be a mapping, got {values!r}.")
        built[name] = _build_section(sections[name], values, f"{source}: {name}")
    config = Config(**built)
    validate(config, source)
    return config




def parse_override(text: str) -> tuple[list[str], Any]:
    """``'a.b=value'`` -> (['a', 'b'], parsed value); values are read as YAML scalars."""
    if "=" not in text:
        raise VstarError(f"--set {text!r}: expected section.field=value.")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise VstarError(f"--set {text!r}: expected section.field=value (e.g. sampling.k=8).")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise VstarError(f"--set {text!r}: cannot read the value: {exc}") from None
    return parts, value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path``, then ``overrides``; validated."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise VstarError(f"config file '{path}' does not exist.") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise VstarError(f"config file '{path}' is not valid YAML: {exc}") from None
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise VstarError(f"--set {text!r}: '{part}' is not a section.")
        node[parts[-1]] = value
        source = f"{source} + --set" if "--set" not in source else source
    return from_dict(data, source)


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


# ---------------------------------------------------------------- validation

_CHOICES = {
    ("model", "dtype"): ("float32", "bfloat16", "float16"),
    ("generator", "method"): ("full", "lora"),
    ("verifier", "method"): ("full", "lora"),
    ("sampling", "backend"): ("transformers", "vllm"),
    ("execution", "backend"): ("local", "ray"),
}


def validate(config: Config, source: str = "config") -> None:
    def fail(where: str, message: str) -> None:
        raise VstarError(f"{source}: {where}: {message}")

    for (section, name), choices in _CHOICES.items():
        value = getattr(getattr(config, section), name)
        if value not in choices:
            fail(f"{section}.{name}", f"expected one of {', '.join(choices)}, got {value!r}.")
    positive = [("run", "iterations"), ("sampling", "k"), ("sampling", "max_new_tokens"),
                ("sampling", "batch_size"), ("eval", "n_candidates"), ("eval", "table_k"),
                ("verifier", "max_pairs_per_problem"), ("generator", "batch_size"),
                ("verifier", "batch_size"), ("generator", "max_length"), ("verifier", "max_length"),
                ("execution", "num_workers"), ("execution", "tensor_parallel_size"), ("execution", "num_processes")]
    for section, name in positive:
        if getattr(getattr(config, section), name) < 1:
            fail(f"{section}.{name}", "expected a value >= 1.")
    if config.run.iterations < 1:
        fail("run.iterations", "expected >= 1.")
    for section in ("sampling", "eval"):
        if getattr(config, section).temperature < 0:
            fail(f"{section}.temperature", "expected a value >= 0.")
    if not 0 < config.sampling.top_p <= 1:
        fail("sampling.top_p", "expected a value in (0, 1].")
    if config.eval.table_k > config.eval.n_candidates:
        fail("eval.table_k", f"k={config.eval.table_k} exceeds eval.n_candidates={config.eval.n_candidates}.")
    for k in config.eval.ks:
        if not isinstance(k, int) or not 1 <= k <= config.eval.n_candidates:
            fail("eval.ks", f"each k must be an integer in 1..n_candidates={config.eval.n_candidates}, got {k!r}.")
    if not 0 <= config.verifier.heldout_fraction < 1:
        fail("verifier.heldout_fraction", "expected a value in [0, 1).")
    for section in ("generator", "verifier"):
        train = getattr(config, section)
        if train.epochs <= 0 or train.learning_rate <= 0:
            fail(f"{section}", "epochs and learning_rate must be > 0.")
    if not config.run.name or "/" in config.run.name:
        fail("run.name", f"expected a plain folder name, got {config.run.name!r}.")


def describe() -> str:
    """Every field with its default and documentation, for `vstar run --help-config`."""
    lines = []
    for name, cls in _section_classes().items():
        lines.append(f"{name}:")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"  {f.name}: {default!r}  # {f.metadata.get('doc', '')}")
    return "\n".join(lines)
