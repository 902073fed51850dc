"""Typed views of ``config.yaml`` and the checks that schema validation cannot express.

The JSON schema (``workflow/schemas/config.schema.yaml``) owns types, ranges, defaults and the
ban on unknown keys; :func:`validate_config` runs it through ``snakemake.utils.validate`` and
then adds the cross-key rules (length range against the context window, logging intervals,
the loss mask against the shortest sequence). Every failure is raised as a :class:`ConfigError`
whose message is one line that names the offending key.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type, or inconsistent with another."""


@dataclass(frozen=True)
class DataConfig:
    """Affine-recurrence sampler of section 3.1: ``a_n = c a_{n-1} + d``."""

    vector_dim: int = 40
    init_range: tuple[float, float] = (-2.0, 2.0)  # a_0 and d entries ~ U(init_range)
    c_range: tuple[float, float] = (-2.0, 2.0)  # scalar c ~ U(c_range), shared by all dims
    length_range: tuple[int, int] = (3, 14)  # number of input vectors L, inclusive
    norm_range: tuple[float, float] = (1.0, 2.0)  # max input norm after normalisation ~ U(.)
    eval_per_length: int = 1000  # fixed evaluation population: sequences per length
    eval_seed: int = 12345


@dataclass(frozen=True)
class ModelConfig:
    """Vector-input GPT of appendix A.1; attribute names follow TransformerLens' config."""

    d_vocab: int = 40
    d_model: int = 128
    d_head: int = 64
    n_heads: int = 8
    d_mlp: int = 3072
    n_layers: int = 3
    n_ctx: int = 32
    act_fn: str = "relu"
    normalization_type: str = "LN"  # "LN" (trained) or "LNPre" (after folding)
    eps: float = 1e-5
    # Constants TransformerLens' weight processing and ActivationCache look up on cfg.
    positional_embedding_type: str = "standard"
    attn_only: bool = False
    final_rms: bool = False
    gated_mlp: bool = False
    parallel_attn_mlp: bool = False
    n_key_value_heads: None = None
    num_experts: None = None
    original_architecture: str = "VectorTransformer"
    rmsnorm_uses_offset: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """Training protocol of section 3.2."""

    steps: int = 100_000
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    loss_from_index: int = 2  # output index 2 predicts a_3, the first predictable term
    log_every: int = 100
    eval_every: int = 1000
    eval_per_length: int = 64
    checkpoint_every: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a trained model: the hash of this names its checkpoints."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        """Stable 16-hex-digit digest of every field; equal configs give equal hashes."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _build(cls, values: Mapping[str, Any] | None):
    """Instantiate a frozen dataclass from a mapping, turning lists into tuples."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key {unknown[0]!r}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def data_config(config: Mapping[str, Any]) -> DataConfig:
    return _build(DataConfig, config.get("data"))


def model_config(config: Mapping[str, Any]) -> ModelConfig:
    """Model config with ``d_vocab`` taken from ``data.vector_dim`` (one source of truth)."""
    values = dict(config.get("model") or {})
    values["d_vocab"] = data_config(config).vector_dim
    return _build(ModelConfig, values)


def run_entry(config: Mapping[str, Any], run: str) -> dict[str, Any]:
    """The ``runs`` list entry named ``run``."""
    runs = config.get("runs") or []
    for entry in runs:
        if entry["name"] == run:
            return entry
    known = ", ".join(e["name"] for e in runs)
    raise ConfigError(f"runs: no run named {run!r} (known: {known})")


#: Sections a ``runs`` entry may override for its run alone.
OVERRIDABLE = ("model", "train")


def merged_config(config: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with one ``runs`` entry's overrides merged into the sections they change."""
    merged = dict(config)
    for section in OVERRIDABLE:
        merged[section] = {**(config.get(section) or {}), **(entry.get(section) or {})}
    return merged


def run_config(config: Mapping[str, Any], run: str) -> RunConfig:
    """The full config of one training run: shared sections, the run's overrides and seed."""
    entry = run_entry(config, run)
    merged = merged_config(config, entry)
    train = {**merged["train"], "seed": entry["seed"]}
    return RunConfig(
        data=data_config(merged), model=model_config(merged), train=_build(TrainConfig, train)
    )


def batch_groups(config: Mapping[str, Any]) -> list[list[str]]:
    """Run names grouped by everything but the seed, in ``runs`` order: each group can train
    as one stacked model."""
    groups: dict[str, list[str]] = {}
    for entry in config["runs"]:
        cfg = run_config(config, entry["name"])
        key = RunConfig(cfg.data, cfg.model, TrainConfig(**{**asdict(cfg.train), "seed": 0})).hash()
        groups.setdefault(key, []).append(entry["name"])
    return list(groups.values())


def _one_line(error: Exception) -> str:
    """Render a jsonschema ValidationError as 'key.path: problem'."""
    path = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{path}: unknown key {extra[0]!r}" if extra else f"{path}: {error.message}"
    if error.validator == "required":
        return f"{path}: {error.message}"
    return f"{path}: {error.message.splitlines()[0]}"


def check_consistency(config: Mapping[str, Any]) -> None:
    """Cross-key rules that a JSON schema cannot state. Raises ConfigError."""
    data, model = config["data"], config["model"]
    names = [entry["name"] for entry in config["runs"]]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"runs: run name {duplicated[0]!r} appears more than once")
    lo, hi = data["length_range"]
    if lo > hi:
        raise ConfigError(f"data.length_range: minimum {lo} is larger than maximum {hi}")
    if hi > model["n_ctx"]:
        raise ConfigError(
            f"data.length_range: maximum length {hi} exceeds model.n_ctx {model['n_ctx']} "
            "(a sequence of L inputs needs L positions)"
        )
    # d_model need not equal n_heads * d_head: weights are stored per head as in
    # TransformerLens, and the paper's own model has 8 * 64 = 512 != 128.
    for key in ("init_range", "c_range", "norm_range"):
        a, b = data[key]
        if a >= b:
            raise ConfigError(f"data.{key}: lower bound {a} must be below upper bound {b}")
    if data["norm_range"][0] <= 0:
        raise ConfigError(f"data.norm_range: lower bound {data['norm_range'][0]} must be > 0")
    train = config["train"]
    if train["loss_from_index"] >= lo:
        raise ConfigError(
            f"train.loss_from_index: {train['loss_from_index']} leaves no target position "
            f"for the shortest sequences (data.length_range minimum {lo})"
        )
    for key in ("eval_every", "checkpoint_every"):
        if train[key] % train["log_every"]:
            raise ConfigError(
                f"train.{key}: {train[key]} must be a multiple of train.log_every {train['log_every']}"
            )
    analysis = config.get("analysis") or {}
    if analysis:
        length = analysis["population_length"]
        if not lo <= length <= hi:
            raise ConfigError(
                f"analysis.population_length: {length} is outside data.length_range [{lo}, {hi}]"
            )
        if analysis["population_size"] > data["eval_per_length"]:
            raise ConfigError(
                f"analysis.population_size: {analysis['population_size']} exceeds "
                f"data.eval_per_length {data['eval_per_length']}"
            )
        too_big = [d for d in analysis["residual_dims"] if d >= data["vector_dim"]]
        if too_big:
            raise ConfigError(
                f"analysis.residual_dims: {too_big[0]} is not below data.vector_dim {data['vector_dim']}"
            )
    if config.get("claims") is not None:
        from .claims import CLAIMS

        known = {c.id for c in CLAIMS}
        unknown = sorted(set(config["claims"]) - known)
        if unknown:
            raise ConfigError(f"claims: unknown claim id {unknown[0]!r}")
    if train["eval_per_length"] > data["eval_per_length"]:
        raise ConfigError(
            f"train.eval_per_length: {train['eval_per_length']} exceeds the evaluation "
            f"population's data.eval_per_length {data['eval_per_length']}"
        )


def _validate(config: dict[str, Any], schema_path: Path | str, where: str) -> None:
    """Schema and cross-key checks of ``config`` (defaults filled in place)."""
    import jsonschema
    from snakemake.utils import validate

    try:
        validate(config, str(schema_path))
    except Exception as exc:  # snakemake wraps the jsonschema error in a WorkflowError
        chain = [*exc.args, exc.__cause__, exc.__context__]
        causes = [a for a in chain if isinstance(a, jsonschema.ValidationError)]
        if not causes:
            raise
        best = jsonschema.exceptions.best_match([causes[0], *causes[0].context])
        raise ConfigError(f"invalid config: {where}{_one_line(best)}") from None
    try:
        check_consistency(config)
    except ConfigError as exc:
        raise ConfigError(f"invalid config: {where}{exc}") from None


def validate_config(config: dict[str, Any], schema_path: Path | str = SCHEMA_PATH) -> None:
    """Validate (and fill defaults into) ``config`` in place; raise a one-line ConfigError.

    Schema checks go through ``snakemake.utils.validate``; the cross-key rules follow. Each
    run's overrides are checked the same way, merged into the sections they change, and an
    error names the run (``runs[wide]: model.d_mlp: ...``).
    """
    _validate(config, schema_path, "")
    for entry in config["runs"]:
        if any(section in entry for section in OVERRIDABLE):
            merged = copy.deepcopy(merged_config(config, entry))
            _validate(merged, schema_path, f"runs[{entry['name']}]: ")
