"""Across runs: does each claim hold in every independently trained model, or in one?

Head-level findings are compared by role, not index (seeds number their heads differently):
per-head tables are re-ranked by score within each layer before they are set side by side.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .claims import REPRODUCED


def aggregate_claims(per_run: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per claim: the value in every run, mean, min, max, and "holds in k of n runs".

    ``per_run`` maps run names to their claims tables (``claims.csv``).
    """
    long = pd.concat([t.assign(run=run) for run, t in per_run.items()], ignore_index=True)
    long["measured_as"] = long["measured_as"].fillna("")  # empty in a CSV reads back as NaN
    runs = list(per_run)
    rows = []
    for claim_id, group in long.groupby("claim_id", sort=False):
        values = group.set_index("run")["measured"].reindex(runs)
        verdicts = group.set_index("run")["verdict"].reindex(runs)
        first = group.iloc[0]
        k = int((verdicts == REPRODUCED).sum())
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
                "min": values.min(),
                "max": values.max(),
                "reproduced_in": k,
                "runs": len(runs),
                "summary": f"holds in {k} of {len(runs)} runs",
                "verdicts": ", ".join(f"{run}: {verdicts[run]}" for run in runs),
            }
        )
    return pd.DataFrame(rows)


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
    """Layer-0 OV fits per run: mean R^2 (residual and random vectors) and median slope."""
    rows = []
    for run, table in per_run.items():
        for source, group in table.groupby("source"):
            rows.append(
                {
                    "run": run,
                    "source": source,
                    "mean_r2": group["r2"].mean(),
                    "median_slope": group["slope"].median(),
                }
            )
    return pd.DataFrame(rows)
