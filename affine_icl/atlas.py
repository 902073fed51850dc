"""The mechanism atlas: every claim's measurement across the runs of a sweep.

A sweep (``sweep:`` in the config, :func:`affine_icl.config.sweep_runs`) trains one run per
combination of its grid's values and seed. :func:`atlas_table` sets every run's claims table
beside the values of its swept settings, one row per (run, claim); the atlas figures
(:func:`affine_icl.figures.across_runs.plot_atlas`) draw each claim's measurement against each
swept setting, one figure per section of the paper, seeds as spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from .claims.registry import CHANCE_IN_UNITS
from .claims.verdicts import (
    DIFFERS,
    NOT_APPLICABLE,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
)
from .margins import margin_across


def atlas_table(
    claims: Mapping[str, pd.DataFrame],
    settings: Mapping[str, Mapping[str, object]],
    seeds: Mapping[str, int],
) -> pd.DataFrame:
    """One row per (run, claim): the run, its seed, its value of every swept setting (one
    column per dotted key, in ``settings`` order), the claim's id, section, measurement, what
    chance gives for it (NaN where the claim has no chance level in its own units: a head
    count's chance is a per-head score) and
    verdict ("not applicable" where the claim needs layers the model lacks, or another task),
    the verdict's margin (``loosest``, ``strictest``, ``margin``; NaN and "" for claims tables
    without it),
    ``chance_passes`` (a measurement at chance would be reproduced too) and ``seeds_verdict``:
    the verdict of most seeds at the run's settings, or :data:`SEEDS_DISAGREE` where two
    verdicts tie for most (one seed each of two)."""
    rows = []
    for run, table in claims.items():
        for claim in table.itertuples():
            rows.append(
                {
                    "run": run,
                    "seed": seeds[run],
                    **{key: _plain(value) for key, value in settings[run].items()},
                    "claim_id": claim.claim_id,
                    "section": str(claim.section),
                    "measured": claim.measured,
                    "chance": claim.chance if CHANCE_IN_UNITS.get(claim.claim_id) else math.nan,
                    "verdict": claim.verdict,
                    # the verdict's margin in strictness factors (claims tables that have it)
                    "loosest": getattr(claim, "loosest", math.nan),
                    "strictest": getattr(claim, "strictest", math.nan),
                    "margin": getattr(claim, "margin", ""),
                    # whether a measurement at chance would be reproduced too
                    "chance_passes": bool(getattr(claim, "chance_passes", False)),
                }
            )
    table = pd.DataFrame(rows)
    point = [*next(iter(settings.values()), {}), "claim_id"]  # one grid point's seeds
    table["seeds_verdict"] = table.groupby(point, sort=False)["verdict"].transform(majority_verdict)
    return table


def verdicts_by_setting(table: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Each claim at each grid point of an :func:`atlas_table`, its seeds pooled: one row per
    (setting, claim) with the ``setting`` label (:func:`setting_label`), the claim's id and
    section, ``runs``, ``reproduced`` (how many runs' verdict is reproduced), ``verdicts`` (each
    verdict with its count, most first, ties in the order of :data:`VERDICT_ORDER`), the
    median, lowest and highest measurement, the verdicts' ``margin`` across the seeds
    (:func:`affine_icl.margins.margin_across`), ``chance_passes_in`` (in how many runs a
    measurement at chance would be reproduced too), and ``differs``: whether the claim's verdicts are
    not in the same shares at every grid point (the claims a swept setting changes)."""
    rows = []
    for keys, group in table.groupby([*axes, "claim_id"], sort=False):
        *values, claim_id = keys
        counts = group["verdict"].value_counts()
        counts = counts.iloc[
            sorted(range(len(counts)), key=lambda i: (-counts.iloc[i], _rank(counts.index[i])))
        ]
        rows.append(
            {
                "setting": setting_label(dict(zip(axes, values, strict=True))),
                "claim_id": claim_id,
                "section": group["section"].iloc[0],
                "runs": len(group),
                "reproduced": int((group["verdict"] == REPRODUCED).sum()),
                "verdicts": ", ".join(f"{verdict} {n}" for verdict, n in counts.items()),
                "median": group["measured"].median(),
                "min": group["measured"].min(),
                "max": group["measured"].max(),
                "margin": margin_across(
                    list(group["verdict"]), list(group["loosest"]), list(group["strictest"])
                )
                if group["margin"].fillna("").astype(bool).any()
                else "-",
                "chance_passes_in": int(group["chance_passes"].sum()),
                "_shares": tuple(sorted((counts / len(group)).round(9).items())),
            }
        )
    out = pd.DataFrame(rows)
    out["differs"] = out.groupby("claim_id")["_shares"].transform("nunique") > 1
    return out.drop(columns="_shares")


#: The order in which tied verdict counts are listed.
VERDICT_ORDER = (REPRODUCED, DIFFERS, NOT_REPRODUCED, NOT_MEASURABLE, NOT_APPLICABLE)


def _rank(verdict: str) -> int:
    return VERDICT_ORDER.index(verdict) if verdict in VERDICT_ORDER else len(VERDICT_ORDER)


#: The seeds' verdict at a setting where two verdicts tie for most.
SEEDS_DISAGREE = "seeds disagree"


def majority_verdict(verdicts: pd.Series) -> str:
    """The verdict most of ``verdicts`` give, or :data:`SEEDS_DISAGREE` on a tie."""
    counts = verdicts.value_counts()
    if len(counts) > 1 and counts.iloc[0] == counts.iloc[1]:
        return SEEDS_DISAGREE
    return counts.index[0]


def _plain(value):
    return "x".join(map(str, value)) if isinstance(value, list | tuple) else value


def section_slug(section: str) -> str:
    """``4.2`` -> ``sec4_2``; the future-work section -> ``sec5``."""
    return "sec" + section.split(" ")[0].replace(".", "_")


def setting_label(values: Mapping[str, object]) -> str:
    """A run's swept settings as one label: ``model.init=torch, model.d_model=64``."""
    return ", ".join(f"{key}={value}" for key, value in values.items())


def loss_curves_table(
    logs: Mapping[str, pd.DataFrame],
    settings: Mapping[str, Mapping[str, object]],
    seeds: Mapping[str, int],
) -> pd.DataFrame:
    """The held-out MSE of every run of a sweep at every evaluation step: one row per (run,
    step) with the run, its seed, its swept settings as one ``setting`` label
    (:func:`setting_label`) and the MSE, from each run's training log (``logs``)."""
    rows = []
    for run, log in logs.items():
        held = log.dropna(subset=["heldout_mse"])
        rows.append(
            pd.DataFrame(
                {
                    "run": run,
                    "seed": seeds[run],
                    "setting": setting_label(settings[run]),
                    "step": held["step"].to_numpy(),
                    "heldout_mse": held["heldout_mse"].to_numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def final_mse_by_setting(curves: pd.DataFrame) -> pd.DataFrame:
    """Per swept setting: the runs, their last held-out MSE (each run's last step), the
    median, lowest and highest, and the last step (``min``: the shortest run's)."""
    last = curves.sort_values("step", kind="stable").groupby("run").tail(1)
    order = list(dict.fromkeys(curves["setting"]))  # as the runs came
    grouped = last.sort_values("seed", kind="stable").groupby("setting", sort=False)
    return (
        pd.DataFrame(
            {
                "runs": grouped["run"].count(),
                "steps": grouped["step"].min(),
                "median_final_mse": grouped["heldout_mse"].median(),
                "min_final_mse": grouped["heldout_mse"].min(),
                "max_final_mse": grouped["heldout_mse"].max(),
                "final_mse_by_seed": grouped.apply(
                    lambda g: ", ".join(
                        f"s{s}: {m:.2e}" for s, m in zip(g["seed"], g["heldout_mse"], strict=True)
                    ),
                    include_groups=False,
                ),
            }
        )
        .reindex(order)
        .rename_axis("setting")
        .reset_index()
    )
