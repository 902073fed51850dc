"""Typed views of ``config.yaml`` and the checks that schema validation cannot express.

The JSON schema (``workflow/schemas/config.schema.yaml``) owns types, ranges, defaults and the
ban on unknown keys; :func:`validate_config` runs it through ``snakemake.utils.validate`` and
then adds the cross-key rules (length range against the context window, logging intervals,
the loss mask against the shortest sequence). Every failure is raised as a :class:`ConfigError`
whose message is one line that names the offending key.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .families import FAMILIES, PAPER_TASK, PARAMETERS

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


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


def setting_params(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Dotted settings as Snakemake params, one param per key (``train.lr`` -> ``train__lr``),
    each value a one-entry dict ``{"train.lr": 0.001}``.

    Snakemake reruns a job when a param's value changes and names the values that differ (not
    the params): one param per key makes its rerun reason list only the changed keys, each with
    its name and old and new value, instead of a whole config section.
    """
    return {key.replace(".", "__"): {key: value} for key, value in settings.items()}


def settings_from_params(params: Any, section: str) -> dict[str, Any]:
    """The ``section`` keys of :func:`setting_params` params, back as ``{key: value}``;
    ``params`` is a rule's ``snakemake.params`` or a mapping."""
    prefix = f"{section}."
    found = {}
    for _, entry in params.items():
        if isinstance(entry, Mapping) and len(entry) == 1:
            ((key, value),) = entry.items()
            if isinstance(key, str) and key.startswith(prefix):
                found[key[len(prefix) :]] = value
    return found


def weights_settings(config: Mapping[str, Any], runs: list[str]) -> dict[str, Any]:
    """The dotted settings that decide the weights of ``runs`` (trained together): one value
    where the runs agree, ``{run: value}`` where they differ (the seed). For one run, the same
    whether it trains alone or batched, so switching ``train_batched`` retrains nothing."""
    per_run = {run: flat_settings(run_config(config, run).weights_dict()) for run in runs}
    # every key any run has (a model.init of UNHASHED_INIT is left out of its run's settings)
    keys = dict.fromkeys(key for settings in per_run.values() for key in settings)
    settings = {}
    for key in keys:
        values = {run: per_run[run].get(key) for run in runs}
        distinct = list(values.values())
        settings[key] = distinct[0] if all(v == distinct[0] for v in distinct) else values
    return settings


def batched_rule_name(group: list[str]) -> str:
    """The Snakemake rule that trains ``group`` batched (rule names cannot hold '-')."""
    return "train_" + "_".join(group).replace("-", "_")


def check_batching(config: Mapping[str, Any]) -> None:
    """With ``train_batched``: no two groups share a rule name (that a group's seeds differ,
    :func:`check_distinct_runs` has made sure)."""
    by_name: dict[str, list[str]] = {}
    for group in batch_groups(config):
        other = by_name.setdefault(batched_rule_name(group), group)
        if other is not group:
            raise ConfigError(
                f"train_batched: runs {'+'.join(other)!r} and {'+'.join(group)!r} give the same "
                f"rule name {batched_rule_name(group)!r} ('-' becomes '_'); rename one"
            )


#: Entries of ``resources`` that are no single rule: every rule not named, every training rule.
RESOURCE_GROUPS = ("default", "train")


def rule_resources(config: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """What ``rule`` asks of the scheduler: ``resources.default`` updated by
    ``resources.<rule>`` (threads, mem_mb, runtime in minutes, gpu, and where set
    slurm_partition and gpu_model). A rule with a GPU also asks
    for its threads per GPU (``cpus_per_gpu``, Slurm's --cpus-per-gpu); gpu 0 is left out, so
    no scheduler sees a GPU request from a CPU rule."""
    wanted = {**config["resources"]["default"], **config["resources"].get(rule, {})}
    gpu = wanted.pop("gpu", 0)
    if gpu:
        wanted.update(gpu=gpu, cpus_per_gpu=wanted["threads"])
    return wanted


def check_resource_rules(config: Mapping[str, Any], rules: list[str]) -> None:
    """Every entry of ``resources`` names a rule of the workflow (or default / train), so a
    misspelt rule cannot silently keep the default resources."""
    import difflib

    known = set(rules) | set(RESOURCE_GROUPS)
    for name in config["resources"]:
        if name not in known:
            close = [rule for rule in sorted(known) if rule.startswith(name)]
            close = close or difflib.get_close_matches(name, sorted(known), n=3)
            hint = (
                f"did you mean {' or '.join(close[:3])}?"
                if close
                else "rules: " + ", ".join(sorted(known))
            )
            raise ConfigError(f"invalid config: resources.{name}: no rule of that name ({hint})")


def _one_line(error: Exception) -> str:
    """Render a jsonschema ValidationError as 'key.path: problem'."""
    path = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"{path}: unknown key {extra[0]!r}" if extra else f"{path}: {error.message}"
    if error.validator == "required":
        return f"{path}: {error.message}"
    return f"{path}: {error.message.splitlines()[0]}"


def _other_section(error: Exception, schema: Mapping[str, Any]) -> str:
    """For an unknown key that is a key of another section (``steps`` at the top level), the
    hint ``(did you mean train.steps? on the command line: --config train='{steps: ...}')``."""
    if error.validator != "additionalProperties":
        return ""
    extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
    if not extra:
        return ""
    sections = [
        name
        for name, node in schema["properties"].items()
        if extra[0] in (node.get("properties") or {})
    ]
    if not sections:
        return ""
    place = " or ".join(f"{s}.{extra[0]}" for s in sections)
    return (
        f" (did you mean {place}? on the command line: "
        f"--config {sections[0]}='{{{extra[0]}: ...}}')"
    )


def check_consistency(config: Mapping[str, Any]) -> None:
    """Cross-key rules that a JSON schema cannot state. Raises ConfigError."""
    data, model = config["data"], config["model"]
    names = [entry["name"] for entry in config["runs"]]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):  # the schema's $ also matches before \n
            raise ConfigError(f"runs: run name {name!r} may hold only letters, digits, _ and -")
    duplicated = sorted(n for n, k in counts.items() if k > 1)
    if duplicated:
        raise ConfigError(f"runs: run name {duplicated[0]!r} appears more than once")
    if os.path.normpath(str(config.get("results", "results"))) in ("/", "//"):
        raise ConfigError("results: / would put every output at the file system's root")
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
    check_representable(data)
    if data["norm_range"][0] <= 0:
        raise ConfigError(f"data.norm_range: lower bound {data['norm_range'][0]} must be > 0")
    train = config["train"]
    family = FAMILIES[data["task"]]
    first = family.first_predictable(data)
    if train["loss_from_index"] < first:
        own = family.setting(data)
        raise ConfigError(
            f"train.loss_from_index: {train['loss_from_index']} trains on outputs the terms "
            f"before them do not determine: the first predictable output index of the "
            f"{family.name} task{f' of {own[0]} {own[1]}' if own else ''} is {first}; "
            f"set train.loss_from_index: {first}"
        )
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
    if config.get("claims") is not None:  # the ids: affine_icl.claims.registry.check_criteria
        for claim, criterion in config["claims"].items():
            check_criterion(claim, criterion)
    if analysis:
        check_c_range(data, analysis["pick_c_threshold"])
    if train["eval_per_length"] > data["eval_per_length"]:
        raise ConfigError(
            f"train.eval_per_length: {train['eval_per_length']} exceeds the evaluation "
            f"population's data.eval_per_length {data['eval_per_length']}"
        )


def check_criterion(claim: str, criterion: Mapping[str, Any]) -> None:
    """A criterion that can be met: bands low to high, and a "differs" bound on the far side of
    the "reproduced" one."""
    for key in ("within", "differs_within"):
        if key in criterion and criterion[key][0] > criterion[key][1]:
            lo, hi = criterion[key]
            raise ConfigError(
                f"claims.{claim}.{key}: [{lo}, {hi}] runs high to low, so no value is in it; "
                f"write [{hi}, {lo}]"
            )
    pairs = (("at_least", "differs_down_to", 1), ("at_most", "differs_up_to", -1))
    for bound, differs, sign in pairs:
        if bound in criterion and differs in criterion:
            if sign * (criterion[bound] - criterion[differs]) < 0:
                side = "below" if sign > 0 else "above"
                raise ConfigError(
                    f"claims.{claim}.{differs}: {criterion[differs]} must lie {side} "
                    f"{bound} {criterion[bound]}"
                )
    if "within" in criterion and "differs_within" in criterion:
        (lo, hi), (dlo, dhi) = criterion["within"], criterion["differs_within"]
        if dlo > lo or dhi < hi:
            raise ConfigError(
                f"claims.{claim}.differs_within: [{dlo}, {dhi}] must contain within [{lo}, {hi}]"
            )


def check_c_range(data: Mapping[str, Any], threshold: float) -> None:
    """Figures 5, 6 and 17 and the checkerboard claim compare sequences with c < -threshold
    (alternating) and c > threshold: the range must hold both."""
    lo, hi = data["c_range"]
    if lo >= -threshold or hi <= threshold:
        raise ConfigError(
            f"data.c_range: [{lo}, {hi}] has no c {'below' if lo >= -threshold else 'above'} "
            f"{-threshold if lo >= -threshold else threshold} (analysis.pick_c_threshold "
            f"{threshold}), so Figures 5, 6 and 17 and the checkerboard claim have no "
            "alternating and non-alternating sequences to compare; widen data.c_range or "
            "lower analysis.pick_c_threshold"
        )


#: The largest float32: every raw term of a sequence must stay below it.
FLOAT32_MAX = 3.4028234663852886e38


def check_representable(data: Mapping[str, Any]) -> None:
    """Reject data ranges whose raw terms can pass float32's range before normalisation.

    The bound is the worst case of the recurrence over the longest sequence (terms
    ``a_0 .. a_T``, ``T = length_range[1]``): ``|a_n| <= m (1 + g + ... + g^n)`` with ``m`` the
    largest ``|init_range|`` (``a_0`` and ``d``) and ``g`` the largest ``|c_range|``, times the
    family's growth per step (:attr:`affine_icl.families.Family.growth`: the order for a linear
    recurrence). Polynomial sequences are kept within [-100, 100] by redrawing
    (:mod:`affine_icl.tasks`), so they are not bounded here."""
    growth = FAMILIES[data.get("task", PAPER_TASK)].step_growth(data)
    if growth is None:
        return
    m = max(abs(v) for v in data["init_range"])
    g = max(abs(v) for v in data["c_range"]) * growth
    longest = data["length_range"][1]
    log_bound = math.log10(m) if m else -math.inf
    log_bound += longest * math.log10(g) if g > 1 else math.log10(longest + 1)
    if g > 1:
        log_bound += math.log10(g / (g - 1))  # 1 + g + ... + g^T < g^T g / (g - 1)
    if log_bound >= math.log10(FLOAT32_MAX):
        raise ConfigError(
            f"data.c_range: {list(data['c_range'])} with data.init_range "
            f"{list(data['init_range'])} gives raw terms up to about 1e{log_bound:.0f} by "
            f"length {longest}, past float32's 3.4e38, so sequences cannot be represented; "
            "narrow data.c_range (or data.init_range, or data.length_range)"
        )


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


@functools.cache
def _validator(schema_path: str):
    """A JSON-schema validator of ``schema_path`` that fills in the schema's defaults (as
    ``snakemake.utils.validate`` does, but with a copy of each default, and built once: that
    function reads the schema file again on every call, which dominated a large sweep's
    validation)."""
    from jsonschema import Draft202012Validator, validators

    schema = _load_schema(schema_path)
    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, node):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, node)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)


def _validate(config: dict[str, Any], schema_path: Path | str, where: str) -> None:
    """Schema and cross-key checks of ``config`` (defaults filled in place)."""
    import jsonschema

    validator = _validator(str(schema_path))
    errors = list(validator.iter_errors(config))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        hint = _other_section(best, _load_schema(str(schema_path)))
        raise ConfigError(f"invalid config: {where}{_one_line(best)}{hint}") from None
    try:
        check_values(config, _load_schema(str(schema_path)))
        check_consistency(config)
    except ConfigError as exc:
        raise ConfigError(f"invalid config: {where}{exc}") from None


def validate_config(config: dict[str, Any], schema_path: Path | str = SCHEMA_PATH) -> None:
    """Validate (and fill defaults into) ``config`` in place; raise a one-line ConfigError.

    Schema checks (types, ranges, defaults) come first; the cross-key rules follow. The
    ``data`` section stays the paper's affine task (runs choose another). A ``sweep`` section
    replaces ``runs`` by its grid of runs (:func:`sweep_runs`). Each distinct set of run
    overrides is checked the same way once, merged into the sections it changes, and an error
    names the first run that has it (``runs[wide]: model.d_mlp: ...``). Finally no two runs
    may train the same model (:func:`check_distinct_runs`).
    """
    family = (config.get("data") or {}).get("task", PAPER_TASK)
    if family != PAPER_TASK:
        raise ConfigError(
            f"invalid config: data.task: {family!r} here would change the paper's task, which "
            "Figure 1 and the shared population show; set it per run, e.g. "
            f"runs: [{{name: x, seed: 0, data: {{task: {family}}}}}]"
        )
    _validate(config, schema_path, "")
    if config.get("sweep"):
        try:
            config["runs"] = sweep_runs(config["sweep"])
        except ConfigError as exc:
            raise ConfigError(f"invalid config: {exc}") from None
        _validate(config, schema_path, "")  # the expanded runs: names, duplicates
    checked = set()
    for entry in config["runs"]:
        overrides = {s: entry[s] for s in OVERRIDABLE if s in entry}
        key = json.dumps(overrides, sort_keys=True, default=str)
        if overrides and key not in checked:
            checked.add(key)
            # the run alone: the other runs were checked above, and a sweep has thousands
            merged = copy.deepcopy({**merged_config(config, entry), "runs": [entry]})
            merged.pop("sweep", None)
            _validate(merged, schema_path, f"runs[{entry['name']}]: ")
    try:
        check_distinct_runs(config)
        if config.get("train_batched"):
            check_batching(config)
    except ConfigError as exc:
        raise ConfigError(f"invalid config: {exc}") from None


def check_distinct_runs(config: Mapping[str, Any]) -> None:
    """No two runs train the same model: runs are keyed by their weights hash, so two runs with
    one seed and equal weights settings (one differing only in a setting no weight depends on,
    or that their task does not read) are one model counted twice. In a sweep, the error names
    the axis that changes no weight."""
    seen: dict[str, str] = {}
    for entry in config["runs"]:
        digest = run_config(config, entry["name"]).hash()
        if digest not in seen:
            seen[digest] = entry["name"]
            continue
        first = seen[digest]
        axes = _differing_axes(config, first, entry["name"])
        if axes:
            raise ConfigError(
                f"sweep.grid: {', '.join(axes)} changes no trained weight here (runs {first!r} "
                f"and {entry['name']!r} would be the same model, config {digest}); sweep only "
                "settings that the weights depend on"
            )
        raise ConfigError(
            f"runs: {first!r} and {entry['name']!r} would train the same model (same seed and "
            f"weights settings, config {digest}); give one another seed or remove it"
        )


def _differing_axes(config: Mapping[str, Any], a: str, b: str) -> list[str]:
    """The sweep axes whose values differ between runs ``a`` and ``b``."""
    if not config.get("sweep"):
        return []
    values = {
        run: flat_settings({s: e.get(s, {}) for s in OVERRIDABLE})
        for run in (a, b)
        for e in [run_entry(config, run)]
    }
    return [key for key in config["sweep"]["grid"] if values[a].get(key) != values[b].get(key)]


# --------------------------------------------------------------------------- values the schema lets through


@functools.cache
def _load_schema(schema_path: str) -> dict[str, Any]:
    """The schema at ``schema_path``, read once (callers must not change it)."""
    import yaml

    return yaml.safe_load(Path(schema_path).read_text())


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema node with its local ``$ref`` (``#/$defs/name``) merged in."""
    if "$ref" in schema:
        return {**root["$defs"][schema["$ref"].split("/")[-1]], **schema}
    return schema


def _children(schema: Mapping[str, Any], key: str, path: tuple, root: Mapping[str, Any]):
    """The schema of ``key`` inside an object schema (a run's overrides: the section's own)."""
    if len(path) == 2 and path[0] == "runs" and key in OVERRIDABLE:
        return root["properties"][key]
    props = schema.get("properties", {})
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def _key_path(path: tuple) -> str:
    """``('runs', 'fast', 'train', 'lr')`` -> ``runs[fast].train.lr``; list items in brackets."""
    text = ""
    for i, part in enumerate(path):
        in_list = isinstance(part, int) or (i == 1 and path[0] == "runs")
        text += f"[{part}]" if in_list else f".{part}"
    return text.lstrip(".") or "<top level>"


def check_values(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Reject what JSON schema lets through: NaN and infinities anywhere (``nan < 0`` is false,
    so a NaN passes every bound), and a float such as ``20.0`` where the schema asks for an
    integer (JSON schema counts it as one; Python's ``range`` and tensor shapes do not)."""

    def walk(value, node, path):
        node = _resolve(node, schema)
        where = _key_path(path)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {value} is not a finite number")
        if node.get("type") == "integer" and isinstance(value, float):
            raise ConfigError(f"{where}: {value!r} is not an integer (write {value:.0f})")
        if isinstance(value, Mapping):
            for key, sub in value.items():
                walk(sub, _children(node, key, path, schema), (*path, key))
        elif isinstance(value, list | tuple):
            items = node.get("items", {})
            for i, sub in enumerate(value):
                label = sub.get("name", i) if isinstance(sub, Mapping) else i
                walk(sub, items, (*path, label))

    walk(config, schema, ())


def replace_criteria(config: dict[str, Any], sources: list[Mapping[str, Any]]) -> None:
    """A claim's criterion given in a config file or on the command line replaces the default
    one whole, in place. Snakemake merges config files key by key, so
    ``claims: {final_mse: {within: [0, 1e-3]}}`` would otherwise keep config.yaml's
    ``at_most`` beside it and fail on keys the user did not write. ``sources``: the user's
    config files (as read) and ``--config`` settings, in the order Snakemake applied them."""
    for source in sources:
        for claim, criterion in (source.get("claims") or {}).items():
            if isinstance(criterion, Mapping):
                config.setdefault("claims", {})[claim] = copy.deepcopy(dict(criterion))


_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _parse_scalar(text: str, kind: str | None):
    """``text`` as the schema's scalar ``kind``; unchanged when it does not parse."""
    if kind == "integer" and _INTEGER.match(text.strip()):
        return int(text)
    if kind == "number":
        if _INTEGER.match(text.strip()):
            return int(text)
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean" and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    return text


def coerce_command_line(
    config: dict[str, Any], given: Mapping[str, Any], schema_path: Path | str = SCHEMA_PATH
) -> None:
    """Give values set with ``snakemake --config`` the types the schema asks for, in place.

    Snakemake parses a nested ``--config train='{steps: 2000}'`` with YAML's BaseLoader, so
    every value inside arrives as a string (``'2000'``). Only the keys in ``given`` (the
    ``--config`` settings) are touched, and only strings where the schema wants a number,
    an integer or a boolean; a string that does not parse is left for validation to reject.
    """
    schema = _load_schema(str(schema_path))

    def walk(value, node, path):
        node = _resolve(node, schema)
        if isinstance(value, str):
            return _parse_scalar(value, node.get("type"))
        if isinstance(value, Mapping):
            return {
                k: walk(v, _children(node, k, path, schema), (*path, k)) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [walk(v, node.get("items", {}), (*path, i)) for i, v in enumerate(value)]
        return value

    def merge(into: dict[str, Any], typed: Mapping[str, Any]) -> None:
        for key, value in typed.items():
            if isinstance(value, Mapping) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(config, walk(dict(given), schema, ()))
