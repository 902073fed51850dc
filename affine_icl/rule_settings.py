"""How the config reaches the Snakemake rules: one param per setting (so a rerun reason names
the changed key, and only the rules that read a setting rerun when it changes), and each rule's
threads and resources from config.yaml ``resources:``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import (
    ConfigError,
    flat_settings,
    run_config,
)


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
