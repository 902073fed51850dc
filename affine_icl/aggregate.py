"""Across runs: does each claim hold in every independently trained model, or in one?

Head-level findings are compared by role, not index (seeds number their heads differently):
per-head tables are re-ranked by score within each layer before they are set side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .analysis.ov_fits import with_reading
from .claims.registry import CHANCE_IN_UNITS
from .claims.verdicts import (
    NOT_APPLICABLE,
    NOT_MEASURABLE,
    REPRODUCED,
    VERDICT_RANK,
    chance_as_good,
)
from .margins import margin_across
from .render import VERDICT_CLASSES, html_table


def runs_table(runs: Sequence[str], paths: Sequence) -> pd.DataFrame:
    """Each run's CSV (``paths``, in the order of ``runs``) with a ``run`` column, one table
    (a per-run table of every run, as the across-runs rules and the README read them)."""
    return pd.concat(
        [pd.read_csv(path).assign(run=run) for run, path in zip(runs, paths, strict=True)],
        ignore_index=True,
    )


def aggregate_claims(per_run: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim: the value in every run, mean, sd, min, max, the mean chance level
    (where it is in the measurement's units), "holds in k of n runs",
    and, from claims tables that have them, the verdicts' ``margin`` across the runs
    (:func:`affine_icl.margins.margin_across`), ``chance_note`` (with the runs in which chance
    would pass the criterion) and ``other_reading`` (:func:`other_reading_summary`).

    ``per_run`` maps run names to their claims tables (``claims.csv``). A claim that a run does
    not list (a future-work claim of another task family) counts as not applicable there, and
    "k of n" counts the runs where the claim applies.
    """
    long = pd.concat([t.assign(run=run) for run, t in per_run.items()], ignore_index=True)
    # empty in a CSV reads back as NaN
    long["measured_as"] = long["measured_as"].astype(object).fillna("")
    runs = list(per_run)
    rows = []
    for claim_id, group in long.groupby("claim_id", sort=False):
        values = group.set_index("run")["measured"].reindex(runs)
        verdicts = group.set_index("run")["verdict"].reindex(runs).fillna(NOT_APPLICABLE)
        first = group.iloc[0]
        k = int((verdicts == REPRODUCED).sum())
        n = int((verdicts != NOT_APPLICABLE).sum())
        elsewhere = f" (not applicable in {len(runs) - n})" if n < len(runs) else ""
        measurable = values.notna()
        rows.append(
            {
                "claim_id": claim_id,
                "section": first["section"],
                "claim": first["claim"],
                "paper": first["paper"],
                "measured_as": first["measured_as"],
                "criterion": first["criterion"],
                **{f"value {run}": values[run] for run in runs},
                "mean": values[measurable].mean() if measurable.any() else np.nan,
                "sd": values[measurable].std() if measurable.sum() > 1 else np.nan,
                "chance": _chance_in_units(claim_id, group),
                "min": values.min(),
                "max": values.max(),
                "reproduced_in": k,
                "runs": n,
                "summary": f"holds in {k} of {n} runs{elsewhere}",
                "verdicts": ", ".join(f"{run}: {verdicts[run]}" for run in runs),
                **_qualifiers(group),
            }
        )
    return pd.DataFrame(rows)


def _chance_in_units(claim_id: str, group: pd.DataFrame) -> float:
    """The claim's mean chance level over runs where it is in the measurement's units (NaN
    for a head count, whose chance is a per-head score's)."""
    if not CHANCE_IN_UNITS.get(claim_id) or "chance" not in group:
        return np.nan
    return float(group["chance"].astype(float).mean())


def _qualifiers(group: pd.DataFrame) -> dict[str, str]:
    """A claim's margin, chance note and other reading across runs, from the columns of the
    claims tables that have them (tables from before them have none)."""
    out = {}
    if "loosest" in group:
        out["margin"] = margin_across(
            list(group["verdict"]), list(group["loosest"]), list(group["strictest"])
        )
    if "chance_passes" in group:
        passes = group["chance_passes"].astype(bool)
        note = group["chance_note"].fillna("")
        out["chance_note"] = (
            f"{note[passes].iloc[0]} (in {int(passes.sum())} of {len(group)} runs)"
            if passes.any()
            else ""
        )
    if "other_reading" in group:
        out["other_reading"] = other_reading_summary(group)
    return out


def other_reading_summary(group: pd.DataFrame) -> str:
    """One claim's other reading over runs (the ``other_*`` columns of its claims tables): the
    reading most runs name as closer to the paper than the literal one, in how many, its mean
    value (range) and verdicts over those runs ("one head at a time: median over heads (closer
    than the literal reading in 4 of 5 runs): 2.0 (1.8 to 2.2), reproduced in 4 (chance 1:
    judged as well or better in 4)"); "" where no run has one."""
    named = group[group["other_reading"].fillna("") != ""]
    if named.empty:
        return ""
    label = named["other_reading"].value_counts().index[0]
    rows = named[named["other_reading"] == label]
    values = rows["other_value"].astype(float)
    counts = rows["other_verdict"].value_counts()
    verdicts = ", ".join(
        f"{v} in {counts[v]}" for v in sorted(counts.index, key=lambda v: VERDICT_RANK.get(v, 3))
    )
    text = f"{label} (closer than the literal reading in {len(rows)} of {len(group)} runs): "
    text += f"{values.mean():.4g}"
    text += f" ({values.min():.4g} to {values.max():.4g})" if len(rows) > 1 else ""
    text += f", {verdicts}"
    chance = rows["other_chance"].astype(float)
    if chance.notna().any():
        as_good = sum(
            chance_as_good(c, v)
            for c, v in zip(
                rows["other_chance_verdict"].fillna(""), rows["other_verdict"], strict=True
            )
        )
        text += f" (chance {chance.mean():.4g}" + (
            f": judged as well or better in {as_good})" if as_good else ")"
        )
    return text


def verdict_settled_since(over_training: pd.DataFrame) -> pd.DataFrame:
    """When each claim's verdict stopped changing during training, over the runs measured at
    more than one step (``over_training``: run, step, claim_id, verdict, as in
    ``claims_over_training.csv`` with a run column).

    One row per claim: ``settled_since``, the first step from which every such run gives its
    final verdict at every later step (the latest of the runs' such steps), ``last_step`` and
    ``runs``, how many runs had snapshots; a verdict that changed at the last snapshot before
    the end is still drifting at the end of training.
    """
    rows = []
    multi = over_training.groupby("run")["step"].transform("nunique") > 1
    table = over_training[multi]
    for claim_id, group in over_training.groupby("claim_id", sort=False):
        claim = table[table["claim_id"] == claim_id]
        since = []
        for _, run in claim.groupby("run"):
            verdicts = run.sort_values("step")[["step", "verdict"]].to_numpy()
            final = verdicts[-1, 1]
            first = len(verdicts) - 1
            while first > 0 and verdicts[first - 1, 1] == final:
                first -= 1
            since.append(int(verdicts[first, 0]))
        rows.append(
            {
                "claim_id": claim_id,
                "settled_since": max(since) if since else np.nan,
                "last_step": int(group["step"].max()),
                "runs": claim["run"].nunique(),
            }
        )
    return pd.DataFrame(rows)


def across_notes(table: pd.DataFrame) -> list[str]:
    """Per claim of an :func:`aggregate_claims` table, what qualifies "holds in k of n": the
    verdicts' margin across runs and any chance note ("" for tables without them)."""
    columns = [c for c in ("margin", "chance_note") if c in table]
    return (
        [
            "; ".join(t for t in row if isinstance(t, str) and t and t != "-")
            for row in table[columns].itertuples(index=False)
        ]
        if columns
        else [""] * len(table)
    )


def held_class(verdicts: Sequence[str]) -> str:
    """Colour class of "holds in k of n runs": green in every run, amber in some, red in none,
    grey when no run could measure the claim (runs where it does not apply do not count)."""
    verdicts = [v for v in verdicts if v != NOT_APPLICABLE]
    k = sum(v == REPRODUCED for v in verdicts)
    if k:
        return "holds" if k == len(verdicts) else "partial"
    return "unknown" if all(v == NOT_MEASURABLE for v in verdicts) else "fails"


def aggregate_html(
    table: pd.DataFrame, per_run: Mapping[str, pd.DataFrame], title: str, intro: Sequence[str] = ()
) -> str:
    """The across-runs claims table (:func:`aggregate_claims`) as an HTML page: each run's
    value coloured by its verdict (written beneath), "holds in k of n runs" coloured, and how
    many claims hold in every, some and no run counted above the table; beneath "holds in",
    the verdicts' margin across runs and any chance note; the other reading beside it."""
    verdicts = {
        run: t.set_index("claim_id")["verdict"].reindex(table["claim_id"]).fillna(NOT_APPLICABLE)
        for run, t in per_run.items()
    }
    values = [f"value {run}" for run in per_run]
    columns = ["section", "claim_id", "claim", "paper", *values, "mean", "sd", "min", "max"]
    columns += ["summary"] + (["other_reading"] if "other_reading" in table else [])
    shown = table[columns + ["measured_as", "criterion"]].rename(
        columns={
            "claim_id": "id",
            "summary": "holds in",
            "measured_as": "measured as",
            "other_reading": "another reading the paper allows",
        }
    )
    shown["section"] = table["section"].astype(str)  # read back from a CSV as a number
    by_claim = [list(row) for row in zip(*verdicts.values(), strict=True)]
    held = pd.Series([held_class(v) for v in by_claim]).value_counts()
    counts = {"every run": "holds", "some runs": "partial", "no run": "fails"}
    summary = "; ".join(f"in {where}: {held.get(c, 0)}" for where, c in counts.items())
    unknown = f"; measurable in no run: {held['unknown']}" if "unknown" in held else ""
    classes = {
        f"value {run}": [VERDICT_CLASSES.get(v, "") for v in verdicts[run]] for run in per_run
    }
    legend = {
        "holds": "reproduced (a run) / in every run (holds in)",
        "partial": "differs in degree / in some runs",
        "fails": "not reproduced / in no run",
        "unknown": "not measurable",
    }
    return html_table(
        shown,
        title,
        [*intro, f"Claims that hold {summary}{unknown} (of {len(table)})."],
        classes={**classes, "holds in": [held_class(v) for v in by_claim]},
        subtexts={f"value {run}": list(verdicts[run]) for run in per_run}
        | {"holds in": across_notes(table)},
        legend=legend,
    )


def ranked_head_scores(
    per_run: Mapping[str, pd.DataFrame], score: str, ascending: bool = False
) -> pd.DataFrame:
    """Per-head ``score`` of every run, heads re-ranked within each layer by that score.

    Columns: run, layer, rank (0 = highest, or lowest with ``ascending``), head, and the score.
    """
    frames = []
    for run, table in per_run.items():
        t = table[["layer", "head", score]].copy()
        t["rank"] = (
            t.groupby("layer")[score].rank(ascending=ascending, method="first").astype(int) - 1
        )
        frames.append(t.assign(run=run))
    return pd.concat(frames, ignore_index=True)[["run", "layer", "rank", "head", score]]


def head_attribution_by_run(per_run: Mapping[str, pd.DataFrame], from_pos: int) -> pd.DataFrame:
    """Mean direct attribution (to ``a_(m+1)``) of every head over positions ``from_pos``..,
    per run: columns run, layer, head, attribution."""
    frames = []
    for run, table in per_run.items():
        t = table[(table["variant"] == "target") & (table["position"] >= from_pos)]
        frames.append(
            t.groupby(["layer", "head"], as_index=False)["attribution"].mean().assign(run=run)
        )
    return pd.concat(frames, ignore_index=True)


def ov_fit_by_run(per_run: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Layer-0 OV fits per run and reading (Figure 8's table): mean R^2 (residual and random
    vectors) and median slope."""
    rows = []
    for run, table in per_run.items():
        for (reading, source), group in with_reading(table).groupby(
            ["reading", "source"], sort=False
        ):
            rows.append(
                {
                    "run": run,
                    "reading": reading,
                    "source": source,
                    "mean_r2": group["r2"].mean(),
                    "median_slope": group["slope"].median(),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- across task families


def across_tasks_table(
    tasks: Mapping[str, str],
    baselines: Mapping[str, pd.DataFrame],
    claims: Mapping[str, pd.DataFrame],
    head_scores: Mapping[str, pd.DataFrame],
    mean_ablation: Mapping[str, pd.DataFrame],
    negative_copying_min_z: float,
) -> pd.DataFrame:
    """One row per run (``tasks``: run -> task label), in task order: the model's MSE over the
    trained positions beside the task's least-squares floor (:mod:`.analysis.baselines`) and
    the other baselines, the layer-0 heads that read the previous vector (and, for a linear
    task, the k previous vectors) as the claims count them, the share of each layer's heads whose
    OV eigenvalue score is >= ``negative_copying_min_z`` sd below its shuffled null, and the MSE
    ratio with every layer-1 head mean-ablated."""
    from .analysis.baselines import trained_mse

    rows = []
    for run, task in tasks.items():
        mse = trained_mse(baselines[run])
        measured = claims[run].set_index("claim_id")["measured"]
        scores = head_scores[run]
        negative = (scores["eigenvalue_score_z"] <= -negative_copying_min_z).groupby(
            scores["layer"]
        )
        rows.append(
            {
                "task": task,
                "run": run,
                "model_mse": mse.get("model", np.nan),
                "least_squares_mse": mse.get("least squares", np.nan),
                "model_over_floor": mse.get("model", np.nan) / mse.get("least squares", np.nan),
                "repeat_last_mse": mse.get("repeat last", np.nan),
                "linear_extrapolation_mse": mse.get("linear extrapolation", np.nan),
                "previous_token_heads": measured.get("layer0_previous_token_heads", np.nan),
                "offset_k_heads": measured.get("linear_offset_heads", np.nan),
                "heads_per_layer": int(scores.groupby("layer").size().max()),
                **{
                    f"negative_copying_share_layer{layer}": v
                    for layer, v in negative.mean().items()
                },
                "layer1_mean_ablation_ratio": float(mean_ablation[run].iloc[-1]["ratio"]),
            }
        )
    return pd.DataFrame(rows)
