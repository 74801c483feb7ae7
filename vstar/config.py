"""Configuration: frozen dataclasses, each field documented once.

Sources, later ones winning: the defaults below, a YAML file (``--config``),
then ``--set section.field=value`` overrides. Every value is type-checked and
range-checked; a mistake raises ``VstarError`` naming the source and the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
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
    base: str = doc("G_base: 'embedded' (tiny Llama built here), 'smollm2-135m-instruct' (installed "
                     "offline, see vstar.models.pretrained), a local model dir or a hub id", "embedded")
    dtype: str = doc("float32, bfloat16 or float16: weights for training, sampling and scoring (bf16/fp16 "
                     "training also turns on mixed precision on a GPU)", "float32")
    chat_template: str = doc("prompts through the tokenizer's chat template: auto (when it has one), on, off",
                             "auto")
    tiny_hidden_size: int = doc("embedded model: hidden size", 96)
    tiny_layers: int = doc("embedded model: transformer layers", 4)
    tiny_heads: int = doc("embedded model: attention heads", 4)
    tiny_intermediate_size: int = doc("embedded model: MLP width", 256)
    tiny_max_positions: int = doc("embedded model: longest sequence in tokens (characters)", 256)


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
    max_steps: int = doc("if > 0, an upper bound on optimizer steps (epochs are cut short to fit)", 500)


@dataclass(frozen=True)
class VerifierSection(TrainSection):
    epochs: float = doc("passes over the training pairs", 1.0)
    learning_rate: float = doc("peak learning rate (linear decay, warmup below)", 5e-4)
    # 1.0, not the common 0.1: on the embedded task a tighter tie to G_SFT kept V's likelihood a
    # better ranker of held-out pairs (84.0% vs 79.0%; G_SFT alone 82.3%)
    beta: float = doc("DPO beta (strength of the KL tie to G_SFT)", 1.0)
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
    score_batch_tokens: int = doc("scoring: padded tokens (rows x longest row) per forward pass; bounds its memory",
                                  8192)
    transfer: dict = doc(
        "other tasks to evaluate G_T + V on after the run, as {task: options} (the paper: gsm8k -> "
        "math500, mbpp -> humaneval); each writes eval_<task>/", factory=dict)


@dataclass(frozen=True)
class BaselinesSection:
    """The paper's other methods, run from the same run directory (all off by default: they cost compute)."""

    rft: bool = doc("RFT: one iteration with iterations x k samples from G_SFT (same sampling budget)", False)
    vstar_1iter: bool = doc("V-STaR[1 iter]: a DPO verifier on the RFT samples only (needs rft)", False)
    orm: bool = doc("ORM verifier: G_SFT + scalar head, binary correctness loss on D_VER", False)
    genrm: bool = doc("generative verifier: G_SFT fine-tuned to answer 'Is the answer correct? Yes/No'", False)
    max_examples_per_problem: int = doc("ORM/GenRM: distinct labeled samples kept per problem", 16)
    orm_lm_loss: float = doc("ORM: weight of the LM loss on the completion added to its correctness loss "
                             "(Cobbe et al. 2021 train both); 0 = correctness loss only", 0.0)


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


@functools.lru_cache(maxsize=None)
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _expected_type(cls: type, name: str) -> type:
    hint = _type_hints(cls)[name]
    return typing.get_origin(hint) or hint


def _coerce(value: Any, expected: type, where: str) -> Any:
    if expected is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:  # YAML reads 1e-3 (no dot) as a string
            return float(value)
        except (ValueError, OverflowError):
            if isinstance(value, int):
                raise VstarError(f"{where}: expected a float, got an integer too large for one.") from None
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise VstarError(f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}.")
    return value


def _build_section(cls: type, values: dict, where: str) -> Any:
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            key = str(key)
            hint = difflib.get_close_matches(key, known, n=1)
            extra = f" Did you mean '{hint[0]}'?" if hint else ""
            raise VstarError(f"{where}.{key}: unknown setting.{extra} Known: {', '.join(known)}.")
        kwargs[key] = _coerce(value, _expected_type(cls, key), f"{where}.{key}")
    return cls(**kwargs)


def _section_classes() -> dict[str, type]:
    return {f.name: _type_hints(Config)[f.name] for f in dataclasses.fields(Config)}


def from_dict(data: dict, source: str = "config") -> Config:
    """Build and validate a Config from nested dicts (e.g. parsed YAML)."""
    if not isinstance(data, dict):
        raise VstarError(f"{source}: expected a mapping of sections, got {type(data).__name__}.")
    sections = _section_classes()
    built = {}
    for name, values in data.items():
        if name not in sections:
            name = str(name)
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
        raise VstarError(f"--set {text!r}: cannot read the value as YAML: {_yaml_problem(exc)}.") from None
    return parts, value


def _read_yaml(path: Path) -> dict:
    """The mapping in a YAML config file; a missing, unreadable or malformed file raises VstarError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VstarError(f"config file '{path}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise VstarError(f"config file '{path}' cannot be read: {reason}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VstarError(f"config file '{path}' is not valid YAML: {_yaml_problem(exc)}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise VstarError(
            f"config file '{path}': expected a mapping of sections (run:, task:, model:, ...), "
            f"got {type(data).__name__}."
        )
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: where (line, column) and what."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + (f"{problem} ({context})" if context else problem)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults, then the YAML file at ``path``, then ``overrides``; validated."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path))
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise VstarError(f"--set {text!r}: '{part}' is not a section.")
        node[parts[-1]] = value
        source = f"{source} + --set" if "--set" not in source else source
    return from_dict(data, source)


def transfer_config(config: Config, name: str, options: dict) -> Config:
    """``config`` with another task in place of the trained one (for its test split)."""
    task = dataclasses.replace(config.task, name=name, options=dict(options))
    return dataclasses.replace(config, task=task)


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


# ---------------------------------------------------------------- validation

_CHOICES = {
    ("model", "dtype"): ("float32", "bfloat16", "float16"),
    ("model", "chat_template"): ("auto", "on", "off"),
    ("generator", "method"): ("full", "lora"),
    ("verifier", "method"): ("full", "lora"),
    ("sampling", "backend"): ("transformers", "vllm"),
    ("execution", "backend"): ("local", "ray"),
}


#: (section, field) -> (lowest, highest) allowed; None = unbounded. Checked after the types.
_RANGES = {
    ("run", "seed"): (0, 2**31 - 1),
    ("run", "iterations"): (1, None),
    ("run", "threads"): (0, None),
    ("model", "tiny_hidden_size"): (2, None),
    ("model", "tiny_layers"): (1, None),
    ("model", "tiny_heads"): (1, None),
    ("model", "tiny_intermediate_size"): (1, None),
    ("model", "tiny_max_positions"): (8, None),
    ("sampling", "k"): (1, None),
    ("sampling", "temperature"): (0, None),
    ("sampling", "max_new_tokens"): (1, None),
    ("sampling", "batch_size"): (1, None),
    ("eval", "n_candidates"): (1, None),
    ("eval", "table_k"): (1, None),
    ("eval", "temperature"): (0, None),
    ("eval", "bootstrap"): (1, None),
    ("eval", "score_batch_tokens"): (1, None),
    ("verifier", "max_pairs_per_problem"): (1, None),
    ("verifier", "beta"): (0, None),
    ("execution", "num_workers"): (1, None),
    ("execution", "gpus_per_worker"): (0, None),
    ("execution", "tensor_parallel_size"): (1, None),
    ("execution", "num_processes"): (1, None),
    ("baselines", "orm_lm_loss"): (0, None),
    ("baselines", "max_examples_per_problem"): (1, None),
}
_TRAIN_RANGES = {
    "batch_size": (1, None), "grad_accum": (1, None), "max_length": (1, None), "max_steps": (0, None),
    "warmup_ratio": (0, 1), "weight_decay": (0, None), "lora_r": (1, None), "lora_alpha": (1, None),
    "lora_dropout": (0, 1),
}


def validate(config: Config, source: str = "config") -> None:
    """Check every value's range and the relations between values; raise VstarError naming the field."""

    def fail(where: str, message: str) -> None:
        raise VstarError(f"{source}: {where}: {message}")

    for (section, name), choices in _CHOICES.items():
        value = getattr(getattr(config, section), name)
        if value not in choices:
            fail(f"{section}.{name}", f"expected one of {', '.join(choices)}, got {value!r}.")
    ranges = dict(_RANGES)
    for section in ("generator", "verifier"):
        ranges.update({(section, name): bounds for name, bounds in _TRAIN_RANGES.items()})
    for (section, name), (low, high) in ranges.items():
        values = getattr(config, section, None)
        if hasattr(values, name):  # sections and fields that exist in this version
            _check_range(getattr(values, name), f"{section}.{name}", low, high, fail)
    _check_floats_finite(config, fail)
    _check_relations(config, fail)


def _check_range(value: Any, where: str, low: Any, high: Any, fail) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        fail(where, f"expected a value {bound}, got {value!r}.")


def _check_floats_finite(config: Config, fail) -> None:
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                fail(f"{section.name}.{f.name}", f"expected a finite number, got {value!r}.")


def _check_relations(config: Config, fail) -> None:
    """Checks that involve more than one value."""
    n = config.eval.n_candidates
    if config.eval.table_k > n:
        fail("eval.table_k", f"k={config.eval.table_k} exceeds eval.n_candidates={n}.")
    for k in config.eval.ks:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
            fail("eval.ks", f"each k must be an integer in 1..eval.n_candidates={n}, got {k!r}.")
    if not 0 < config.sampling.top_p <= 1:
        fail("sampling.top_p", f"expected a value in (0, 1], got {config.sampling.top_p!r}.")
    if not 0 <= config.verifier.heldout_fraction < 1:
        fail("verifier.heldout_fraction", f"expected a value in [0, 1), got {config.verifier.heldout_fraction!r}.")
    for section in ("generator", "verifier"):
        train = getattr(config, section)
        for name in ("epochs", "learning_rate"):
            if getattr(train, name) <= 0:
                fail(f"{section}.{name}", f"expected a value > 0, got {getattr(train, name)!r}.")
    if not 0 < config.execution.gpu_memory_utilization <= 1:
        fail("execution.gpu_memory_utilization", "expected a value in (0, 1].")
    model = config.model
    if model.tiny_hidden_size % model.tiny_heads or (model.tiny_hidden_size // model.tiny_heads) % 2:
        fail("model.tiny_hidden_size", f"expected a multiple of model.tiny_heads={model.tiny_heads} with an even "
             f"size per head, got {model.tiny_hidden_size}.")
    if not model.base.strip():
        fail("model.base", "expected 'embedded', a model directory or a hub id, got an empty string.")
    name = config.run.name
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        fail("run.name", f"expected a plain folder name, got {name!r}.")
    if not config.run.root or "\0" in config.run.root:
        fail("run.root", f"expected a folder path, got {config.run.root!r}.")
    for task, options in config.eval.transfer.items():
        if not isinstance(task, str) or not (options is None or isinstance(options, dict)):
            fail(f"eval.transfer.{task}", f"expected a task name mapped to its options (a mapping or null), "
                 f"got {options!r}.")
    baselines = getattr(config, "baselines", None)
    if baselines is not None and baselines.vstar_1iter and not baselines.rft:
        fail("baselines.vstar_1iter", "needs baselines.rft: true (it trains on the RFT samples).")


def describe() -> str:
    """Every field with its default and documentation, for `vstar run --help-config`."""
    lines = []
    for name, cls in _section_classes().items():
        lines.append(f"{name}:")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"  {f.name}: {default!r}  # {f.metadata.get('doc', '')}")
    return "\n".join(lines)
