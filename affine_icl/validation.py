"""Checking a config: the JSON schema (``workflow/schemas/config.schema.yaml``) and the rules it
cannot express.

The schema owns types, ranges, defaults and the ban on unknown keys; :func:`validate_config`
runs it and then adds the cross-key rules (length range against the context window, logging
intervals, the loss mask against the shortest sequence). Every failure is raised as a
:class:`~affine_icl.config.ConfigError` whose message is one line that names the offending key.
The command line's strings get the schema's types here too (:func:`coerce_command_line`), and a
criterion given anew replaces config.yaml's whole (:func:`replace_criteria`).
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import (
    FLOAT32_MAX,
    OVERRIDABLE,
    ConfigError,
    batch_groups,
    batched_rule_name,
    flat_settings,
    merged_config,
    run_config,
    run_entry,
    sweep_runs,
)
from .families import FAMILIES, PAPER_TASK

REPO_ROOT = Path(__file__).resolve().parent.parent


SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


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
