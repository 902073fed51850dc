"""Typed views of ``config.yaml``: the settings that decide a run's data, model, training and
analyses (frozen dataclasses, hashed to name checkpoints), and how a run's settings are found
(``runs:`` entries over the shared sections, sweeps expanded into runs).

Checking a config is :mod:`affine_icl.validation` (the schema and the cross-key rules); handing
settings to Snakemake rules is :mod:`affine_icl.rule_settings`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .families import FAMILIES, PAPER_TASK, PARAMETERS


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type, or inconsistent with another."""


@dataclass(frozen=True)
class DataConfig:
    """Recurrence sampler of section 3.1: ``a_n = c a_{n-1} + d``, or another family of
    :mod:`affine_icl.tasks` (``task``, with its ``order`` or ``degree``; the settings each
    family reads: :mod:`affine_icl.families`)."""

    vector_dim: int = 40
    init_range: tuple[float, float] = (-2.0, 2.0)  # a_0 and d entries ~ U(init_range)
    c_range: tuple[float, float] = (-2.0, 2.0)  # scalar c ~ U(c_range), shared by all dims
    length_range: tuple[int, int] = (3, 14)  # number of input vectors L, inclusive
    norm_range: tuple[float, float] = (1.0, 2.0)  # max input norm after normalisation ~ U(.)
    eval_per_length: int = 1000  # fixed evaluation population: sequences per length
    eval_seed: int = 12345
    task: str = PAPER_TASK  # affine | linear | diagonal | polynomial (affine_icl/tasks/)
    order: int = 2  # linear: terms the recurrence reads
    degree: int = 2  # polynomial: highest power

    def identity(self) -> dict[str, Any]:
        """The settings that define the data: every field, less ``task``/``order``/``degree``
        where the task does not read them (so the affine task's hashes predate the families)."""
        family = FAMILIES[self.task]
        d = asdict(self)
        if family.paper:
            del d["task"]
        for name in PARAMETERS - {family.parameter}:
            del d[name]
        return d


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
    # How the weights are drawn before training (:meth:`VectorTransformer.init_weights`):
    # "torch" (nn.Linear defaults: the paper's final MSE, README "Initialisation") or
    # "transformer_lens" (the authors' stock HookedTransformer; the default before 2026-12-04).
    init: str = "torch"
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
    # Weights kept at every multiple of this step (0: none), for measurements over training.
    snapshot_every: int = 10_000
    seed: int = 0
    # How a step runs, not what it computes: "auto" records it as a CUDA graph on CUDA and falls
    # back to eager steps if that fails; "on" fails instead; "off" never records one.
    cuda_graphs: str = "auto"

    def __post_init__(self):
        # YAML 1.1 reads an unquoted on/off as true/false: both spellings mean the same
        if isinstance(self.cuda_graphs, bool):
            object.__setattr__(self, "cuda_graphs", "on" if self.cuda_graphs else "off")


@dataclass(frozen=True)
class AnalysisConfig:
    """The analysis settings of section 4 (config.yaml ``analysis:``): the analysis population,
    and what counts as a head of each kind, stated against chance (a ratio to the uniform share,
    a z against a shuffled null). Heads are picked by these measured scores, never by index."""

    population_length: int = 14  # the analysis population: sequences of this length ...
    population_size: int = 1000  # ... from the evaluation population (paper: 1,000 samples)
    cache_batch_size: int = 250
    seed: int = 0
    pick_c_threshold: float = 0.5  # Figs 5/6: alternating c < -0.5, non-alternating c > 0.5
    previous_token_min_ratio: float = 2.0  # attention on the previous vector >= 2x uniform
    key1_min_ratio: float = 2.0  # attention on the second vector >= 2x uniform
    qk_identity_min_z: float = 5.0  # QK identity score >= 5 sd above the shuffled null
    negative_copying_min_z: float = 5.0  # OV eigenvalue score >= 5 sd below the shuffled null
    null_draws: int = 200  # shuffles / permutations per null
    residual_dims: tuple[int, ...] = (0, 1, 2)  # vector components drawn in Figs 14 and 17


@dataclass(frozen=True)
class RunAnalysis:
    """What a run's tables and claims are measured with, beside its model and population: the
    analysis settings, the run's first trained output (``train.loss_from_index``) and its data
    settings (which name its task family)."""

    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    loss_from_index: int = 2
    data: DataConfig = field(default_factory=DataConfig)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a trained model: the hash of this names its checkpoints."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> RunConfig:
        """The inverse of :meth:`to_dict` (the ``run_config`` a weights file records): a model
        section without ``init`` is :data:`UNHASHED_INIT`, whatever the default."""
        return cls(
            data=_build(DataConfig, settings.get("data")),
            model=_build(ModelConfig, {"init": UNHASHED_INIT, **(settings.get("model") or {})}),
            train=_build(TrainConfig, settings.get("train")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Every setting, the data section as :meth:`DataConfig.identity` gives it and
        ``model.init`` only where it is not :data:`UNHASHED_INIT` (so the hashes of runs
        trained before the setting existed stay what they were, whatever the default)."""
        d = {**asdict(self), "data": self.data.identity()}
        if self.model.init == UNHASHED_INIT:
            del d["model"]["init"]
        return d

    def weights_dict(self) -> dict[str, Any]:
        """The settings that determine the trained weights: :meth:`to_dict` less
        :data:`NOT_IN_WEIGHTS` (the logging, evaluation and checkpoint cadence), plus the
        :data:`TRAINING_ARITHMETIC` version from version 2 on."""
        d = self.to_dict()
        for section, keys in NOT_IN_WEIGHTS.items():
            for key in keys:
                d[section].pop(key)
        if TRAINING_ARITHMETIC != 1:
            d["training_arithmetic"] = TRAINING_ARITHMETIC
        return d

    def hash(self) -> str:
        """Stable 16-hex-digit digest of :meth:`weights_dict`: the identity of the trained
        model (its weights after ``train.steps`` steps), recorded as ``config_hash`` in every
        file made from it. Equal weights settings give equal hashes, so a changed logging
        cadence retrains nothing."""
        return _digest(self.weights_dict())

    def trajectory_hash(self) -> str:
        """The digest of :meth:`weights_dict` less ``train.steps``: the training trajectory,
        which names the run's checkpoint directory. The protocol's learning rate is constant and
        the data stream does not depend on the step count, so the weights at step n are the same
        for every ``train.steps`` >= n, and a longer run continues from a shorter one's end."""
        d = self.weights_dict()
        del d["train"]["steps"]
        return _digest(d)


def _digest(settings: Mapping[str, Any]) -> str:
    blob = json.dumps(settings, sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


#: The ``model.init`` every run was trained with before the setting existed: left out of the
#: hashed settings (:meth:`RunConfig.to_dict`), so those runs keep their hashes and files.
UNHASHED_INIT = "transformer_lens"


#: Version of the training arithmetic: the forward and loss of :mod:`affine_icl.stacked`, the
#: AdamW update, the data stream and the initialisation, as they turn a config into weights.
#: Bump it with any change to the training code that changes the weights a config trains by
#: more than the float tolerance of the equivalence tests (tests/test_stacked.py); every run
#: then has new hashes, so no checkpoint of the old arithmetic is resumed and every run
#: retrains. Version 1 is the arithmetic every hash was computed under before the version
#: existed; it stays out of the hashed settings, so those hashes (and runs) stay valid.
TRAINING_ARITHMETIC = 1


#: Settings that change what is logged or evaluated, how often a checkpoint is written, or how
#: a step runs (``cuda_graphs``), but not one trained weight: they key no checkpoint and
#: retrain nothing.
NOT_IN_WEIGHTS: dict[str, tuple[str, ...]] = {
    "data": ("eval_per_length", "eval_seed"),
    "train": (
        "log_every",
        "eval_every",
        "eval_per_length",
        "checkpoint_every",
        "snapshot_every",
        "cuda_graphs",
    ),
}


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


def analysis_config(values: Mapping[str, Any] | None) -> AnalysisConfig:
    """The analysis settings from config.yaml's ``analysis:`` (or a rule's ``analysis.*``
    params, :func:`settings_from_params`), every key one of :class:`AnalysisConfig`'s."""
    return _build(AnalysisConfig, values)


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
OVERRIDABLE = ("model", "train", "data")


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


def batch_settings(cfg: RunConfig) -> dict[str, Any]:
    """Every setting of ``cfg`` but the two that decide only its initial weights, ``train.seed``
    and ``model.init``: runs whose batch settings are equal can train as one stacked model."""
    settings = cfg.to_dict()
    settings["train"] = {k: v for k, v in settings["train"].items() if k != "seed"}
    settings["model"] = {k: v for k, v in asdict(cfg.model).items() if k != "init"}
    return settings


def batch_groups(config: Mapping[str, Any]) -> list[list[str]]:
    """Run names grouped by :func:`batch_settings`, in ``runs`` order: each group can train as
    one stacked model."""
    groups: dict[str, list[str]] = {}
    for entry in config["runs"]:
        settings = batch_settings(run_config(config, entry["name"]))
        key = json.dumps(settings, sort_keys=True, default=list)
        groups.setdefault(key, []).append(entry["name"])
    return list(groups.values())


def flat_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as one level of dotted keys: ``{"train": {"lr": 1e-3}}`` ->
    ``{"train.lr": 1e-3}``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_settings(value, f"{name}."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def batched_rule_name(group: list[str]) -> str:
    """The Snakemake rule that trains ``group`` batched (rule names cannot hold '-')."""
    return "train_" + "_".join(group).replace("-", "_")


#: The largest float32: every raw term of a sequence must stay below it.
FLOAT32_MAX = 3.4028234663852886e38


def _slug(value: Any) -> str:
    """A sweep value as part of a run name: ``128``, ``0.0001`` -> ``0p0001``, ``[-1, 1]`` ->
    ``m1_1``, ``linear``; letters, digits and ``p``/``m``/``_`` only."""
    if isinstance(value, list | tuple):
        return "_".join(_slug(v) for v in value)
    text = (
        str(value).lower()
        if isinstance(value, bool)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )
    return re.sub(r"[^A-Za-z0-9]", "", text.replace(".", "p").replace("-", "m").replace("+", ""))


def sweep_runs(sweep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The runs of a ``sweep`` section: every combination of its ``grid`` (dotted keys of the
    sections a run may override -> lists of values) times its ``seeds``, in grid order, each
    named after its values (``d_model64-n_layers2-s0``), with the values as its overrides."""
    grid, seeds = sweep["grid"], sweep.get("seeds", [0])
    known = {
        name: {f.name for f in fields(cls)}
        for name, cls in (("model", ModelConfig), ("train", TrainConfig), ("data", DataConfig))
    }
    for key in grid:
        section, _, name = key.partition(".")
        if (
            section not in OVERRIDABLE
            or name not in known[section]
            or key in ("train.seed", "model.d_vocab")
        ):
            raise ConfigError(
                f"sweep.grid: {key!r} is not a setting a run may change (model.*, train.* or "
                "data.* keys; the seed comes from sweep.seeds, d_vocab from data.vector_dim)"
            )
    runs = []
    for values in itertools.product(*grid.values()):
        overrides: dict[str, dict[str, Any]] = {}
        for key, value in zip(grid, values, strict=True):
            section, name = key.split(".", 1)
            overrides.setdefault(section, {})[name] = value
        label = "-".join(
            f"{key.split('.', 1)[1]}{_slug(v)}" for key, v in zip(grid, values, strict=True)
        )
        runs += [{"name": f"{label}-s{seed}", "seed": seed, **overrides} for seed in seeds]
    return runs
