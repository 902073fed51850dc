"""How a run departs from the paper's protocol: the settings that decide its weights against
:class:`~affine_icl.config.RunConfig`'s defaults (config.yaml's, the paper's), for the claims
pages, the report's front page and the model cards."""

from __future__ import annotations

from typing import Any

from .config import RunConfig


def protocol_differences(run: RunConfig) -> list[str]:
    """Where a run's weight settings depart from the paper's protocol (:class:`RunConfig`'s
    defaults, as in config.yaml), as ``"train.steps = 200 (paper: 100000)"``; the seed and the
    logging cadence do not count. ``model.init``, which the paper does not state, is named
    against the default: ``"model.init = transformer_lens (default: torch; the paper does not
    say)"``."""
    protocol = RunConfig()
    paper, ran = protocol.weights_dict(), run.weights_dict()
    ran["model"].setdefault("init", run.model.init)  # left out of the hashed settings
    differences = []
    for section, values in ran.items():
        if not isinstance(values, dict):  # training_arithmetic: code, not a setting
            continue
        for key, value in values.items():
            # a setting the protocol's dict leaves out (model.init, a task's order) is the
            # protocol's default
            expected = paper[section].get(key, getattr(getattr(protocol, section), key))
            if key == "seed" or value == expected:
                continue
            source = (
                f"default: {_plain(expected)}; the paper does not say"
                if f"{section}.{key}" == "model.init"
                else f"paper: {_plain(expected)}"
            )
            differences.append(f"{section}.{key} = {_plain(value)} ({source})")
    return differences


def protocol_note(name: str, run: RunConfig) -> str:
    """One line on what run ``name`` trained, and whether that is the paper's protocol."""
    differs = protocol_differences(run)
    return f"Run {name}: seed {run.train.seed}, {run.train.steps:,} training steps; " + (
        "not the paper's protocol: " + "; ".join(differs) + "."
        if differs
        else "the paper's protocol."
    )


def _plain(value: Any) -> str:
    """A config value as config.yaml would write it: 0.0001 as 1e-04, a tuple as a list."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)
