"""Every quantitative statement of the paper, measured on this run, with a verdict.

The measurement of each claim is code (below); the criterion it is judged by is config
(``claims:`` in config.yaml), so a reader can see and change how strict each verdict is.
A criterion is one of

- ``{at_least: x, differs_down_to: y}``: reproduced if measured >= x; "differs in degree"
  if measured >= y; else not reproduced.
- ``{at_most: x, differs_up_to: y}``: the mirror image.
- ``{within: [lo, hi], differs_within: [lo2, hi2]}``: reproduced inside [lo, hi], differs in
  degree inside the wider interval, else not reproduced.

A measurement that cannot be made (NaN) is reported as "not measurable", never as reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

REPRODUCED, DIFFERS, NOT_REPRODUCED, NOT_MEASURABLE = (
    "reproduced",
    "differs in degree",
    "not reproduced",
    "not measurable",
)


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    statement: str
    paper: str
    measure: Callable[[Mapping[str, pd.DataFrame], Mapping[str, Any]], float]
    unit: str = ""


def verdict(value: float, criterion: Mapping[str, Any]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURABLE
    if "at_least" in criterion:
        if value >= criterion["at_least"]:
            return REPRODUCED
        return DIFFERS if value >= criterion.get("differs_down_to", math.inf) else NOT_REPRODUCED
    if "at_most" in criterion:
        if value <= criterion["at_most"]:
            return REPRODUCED
        return DIFFERS if value <= criterion.get("differs_up_to", -math.inf) else NOT_REPRODUCED
    lo, hi = criterion["within"]
    if lo <= value <= hi:
        return REPRODUCED
    lo2, hi2 = criterion.get("differs_within", (lo, hi))
    return DIFFERS if lo2 <= value <= hi2 else NOT_REPRODUCED


def describe(criterion: Mapping[str, Any]) -> str:
    if "at_least" in criterion:
        text = f">= {criterion['at_least']:g}"
        extra = criterion.get("differs_down_to")
        return text + (f" (differs in degree if >= {extra:g})" if extra is not None else "")
    if "at_most" in criterion:
        text = f"<= {criterion['at_most']:g}"
        extra = criterion.get("differs_up_to")
        return text + (f" (differs in degree if <= {extra:g})" if extra is not None else "")
    lo, hi = criterion["within"]
    text = f"in [{lo:g}, {hi:g}]"
    if "differs_within" in criterion:
        lo2, hi2 = criterion["differs_within"]
        text += f" (differs in degree if in [{lo2:g}, {hi2:g}])"
    return text


# --------------------------------------------------------------------------- measurements


def _heads(t, layer):
    scores = t["head_scores"]
    return scores[scores["layer"] == layer]


def _count(t, layer, column, threshold, below=False):
    heads = _heads(t, layer)
    return float((heads[column] < threshold).sum() if below else (heads[column] >= threshold).sum())


def _attribution(t, layer, from_pos):
    a = t["head_attribution"]
    a = a[(a["variant"] == "target") & (a["layer"] == layer) & (a["position"] >= from_pos)]
    return a.groupby("head")["attribution"].mean()


def _regressions(t, source):
    r = t["ov_regressions"]
    return r[r["source"] == source]


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "final_mse",
        "4.1",
        "the trained model reaches an MSE of 0.0001",
        "1e-4",
        lambda t, p: float(t["train_log"]["heldout_mse"].dropna().iloc[-1]),
    ),
    Claim(
        "layer0_previous_token_heads",
        "4.2",
        "layer-0 heads attend to the previous vector, all but the last head",
        "7 of 8 heads",
        lambda t, p: _count(t, 0, "previous_token_score", p["previous_token_threshold"]),
        "heads",
    ),
    Claim(
        "layer1_second_vector_heads",
        "4.2",
        "most layer-1 heads focus on the second vector",
        "a majority of 8 heads",
        lambda t, p: _count(t, 1, "key1_score", p["key1_threshold"]),
        "heads",
    ),
    Claim(
        "layer2_checkerboard",
        "4.2",
        "layer-2 patterns are checkerboards on alternating sequences, not on others",
        "checkerboard only when c < 0",
        lambda t, p: float(
            (
                _heads(t, 2)["same_parity_alternating"]
                - _heads(t, 2)["same_parity_non_alternating"]
            ).mean()
        ),
        "same-parity attention mass, alternating minus non-alternating, mean over layer-2 heads",
    ),
    Claim(
        "layer0_attribution_positive",
        "4.3",
        "layer-0 heads add information in the direction of a_(m+1)",
        "positive",
        lambda t, p: float((_attribution(t, 0, p["loss_from_index"]) > 0).mean()),
        "share of layer-0 heads with positive mean attribution",
    ),
    Claim(
        "layer1_attribution_small",
        "4.3",
        "layer-1 heads have direct attributions near zero",
        "near zero",
        lambda t, p: float(
            _attribution(t, 1, p["loss_from_index"]).abs().mean()
            / _attribution(t, 0, p["loss_from_index"]).abs().mean()
        ),
        "mean |attribution| of layer-1 heads / that of layer-0 heads",
    ),
    Claim(
        "layer2_attribution_negative",
        "4.3",
        "layer-2 heads add information opposite to a_(m+1)",
        "negative",
        lambda t, p: float((_attribution(t, 2, p["loss_from_index"]) < 0).mean()),
        "share of layer-2 heads with negative mean attribution",
    ),
    Claim(
        "layer0_ov_r2",
        "4.4",
        "layer-0 OV: (x_d, (OV x)_d) is nearly linear",
        "R^2 0.83",
        lambda t, p: float(_regressions(t, "residual")["r2"].mean()),
        "mean per-vector R^2",
    ),
    Claim(
        "layer0_ov_slope",
        "4.4",
        "layer-0 OV slope lies between 2.1 and 2.5",
        "2.1-2.5",
        lambda t, p: float(_regressions(t, "residual")["slope"].median()),
        "median per-vector slope",
    ),
    Claim(
        "random_ov_r2",
        "4.4",
        "on random vectors the same fit is worse",
        "R^2 0.598",
        lambda t, p: float(_regressions(t, "random")["r2"].mean()),
        "mean per-vector R^2",
    ),
    Claim(
        "ov_r2_gap",
        "4.4",
        "residual vectors fit better than random vectors",
        "0.832 vs 0.598 (gap 0.234)",
        lambda t, p: float(
            _regressions(t, "residual")["r2"].mean() - _regressions(t, "random")["r2"].mean()
        ),
        "R^2 gap",
    ),
    Claim(
        "outside_embedding_share",
        "4.4",
        "84.15% of layer-0 OV output lies outside the span of W_E",
        "0.8415",
        lambda t, p: float(t["embedding_span"]["share_outside"].mean()),
        "mean share; a random direction gives sqrt(1 - rank(W_E)/d_model), 0.83 for 40 in 128",
    ),
    Claim(
        "layer1_mean_ablation",
        "4.5",
        "mean-ablating layer-1 heads raises the MSE only from 1e-4 to 2e-4",
        "ratio 2",
        lambda t, p: float(t["mean_ablation"].iloc[-1]["ratio"]),
        "MSE ratio, all layer-1 heads mean-ablated / none",
    ),
    Claim(
        "layer1_ov_low_rank",
        "4.5",
        "layer-1 OV matrices have low effective rank",
        "low (a single direction)",
        lambda t, p: float(_heads(t, 1)["ov_effective_rank"].median()),
        "median effective rank of layer-1 OVs (max d_head)",
    ),
    Claim(
        "layer2_negative_copying",
        "4.6",
        "every layer-2 head is a negative copying head (eigenvalue score < 0)",
        "8 of 8 heads",
        lambda t, p: _count(
            t, 2, "eigenvalue_score", p["negative_eigenvalue_threshold"], below=True
        ),
        "heads",
    ),
    Claim(
        "layer2_qk_identity",
        "4.6",
        "layer-2 QK circuits resemble the identity",
        "heads 0-4 (5 of 8)",
        lambda t, p: _count(t, 2, "qk_identity_d_model", p["qk_identity_threshold"]),
        "heads",
    ),
    Claim(
        "qk_intervention",
        "4.6",
        "replacing QK by a pseudo-inverse projection leaves the MSE at 1e-4",
        "ratio 1",
        lambda t, p: (
            float(t["qk_intervention"]["ratio"].iloc[0])
            if t["qk_intervention"]["n_heads"].iloc[0] > 0
            else float("nan")
        ),
        "MSE ratio after / before; heads and why in qk_intervention.csv (picked_by)",
    ),
    Claim(
        "mlp_final_positions",
        "4.7",
        "MLPs contribute in the correct direction at the final positions",
        "positive",
        lambda t, p: float(
            t["mlp_attribution"]
            .query("variant == 'target'")
            .groupby("position")["attribution"]
            .sum()
            .iloc[-3:]
            .mean()
        ),
        "summed MLP attribution, mean over the last 3 positions",
    ),
    Claim(
        "layer0_estimate",
        "4.6",
        "the residual after layer 0, decoded, already approximates a_(n+1)",
        "a reasonable estimate",
        lambda t, p: float(
            t["residual_after_layer0"]
            .query("series == 'decoded residual after layer 0'")["cosine_to_target"]
            .mean()
        ),
        "mean cosine similarity with a_(n+1)",
    ),
    Claim(
        "layer0_shape",
        "4.8",
        "layer 0 approximately computes a_n + alpha a_(n-1)",
        "alpha 2.1-2.5",
        lambda t, p: float(
            t["residual_shape"]
            .set_index("compared_with")["mean_correlation"]
            .filter(like="(the paper's)")
            .iloc[0]
        ),
        "correlation over positions of the decoded residual after layer 0 with "
        "a_n + 2.3 a_(n-1) (the paper's alpha)",
    ),
)


def claims_table(
    tables: Mapping[str, pd.DataFrame], criteria: Mapping[str, Mapping], params: Mapping[str, Any]
) -> pd.DataFrame:
    """One row per claim: id, section, claim, paper, measured, what was measured, criterion, verdict."""
    missing = [c.id for c in CLAIMS if c.id not in criteria]
    if missing:
        raise KeyError(f"claims: no criterion configured for {', '.join(missing)}")
    rows = []
    for claim in CLAIMS:
        value = claim.measure(tables, params)
        rows.append(
            {
                "claim_id": claim.id,
                "section": claim.section,
                "claim": claim.statement,
                "paper": claim.paper,
                "measured": value,
                "measured_as": claim.unit,
                "criterion": describe(criteria[claim.id]),
                "verdict": verdict(value, criteria[claim.id]),
            }
        )
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown table (no extra dependency)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"
