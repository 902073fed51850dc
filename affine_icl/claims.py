"""Every quantitative statement of the paper, measured on this run, with a verdict.

What the paper says and reports is :mod:`affine_icl.paper`; the measurement of each claim is
code (below, by claim id); the criterion it is judged by is config
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

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .analysis.ov_fits import ov_alpha
from .config import RunConfig
from .paper import PAPER, PAPER_CLAIMS, PaperClaim

REPRODUCED, DIFFERS, NOT_REPRODUCED, NOT_MEASURABLE = (
    "reproduced",
    "differs in degree",
    "not reproduced",
    "not measurable",
)


#: ``measure(tables, params)``: one number from the run's tables and the analysis parameters.
Measure = Callable[[Mapping[str, pd.DataFrame], Mapping[str, Any]], float]


@dataclass(frozen=True)
class Claim:
    """A claim of the paper (:data:`affine_icl.paper.PAPER_CLAIMS`) and how it is measured."""

    said: PaperClaim
    measure: Measure
    unit: str = ""

    @property
    def id(self) -> str:
        return self.said.id


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


def _correlation_at_alpha(shape: pd.DataFrame, alpha: float) -> float:
    """The ``mean_correlation`` of the row of ``residual_shape.csv`` compared with
    ``a_n + alpha a_(n-1)`` for this ``alpha`` (the correlation depends on alpha alone)."""
    rows = shape[np.isclose(shape["alpha"], alpha)]
    if rows.empty:
        raise ValueError(f"residual_shape: no row compares with alpha {alpha:g}")
    return float(rows["mean_correlation"].iloc[0])


#: How each claim of :data:`~affine_icl.paper.PAPER_CLAIMS` is measured: ``{id: (measure,
#: what the number is)}``.
MEASUREMENTS: dict[str, tuple[Measure, str]] = {
    "final_mse": (
        lambda t, p: float(t["train_log"]["heldout_mse"].dropna().iloc[-1]),
        "",
    ),
    "layer0_previous_token_heads": (
        lambda t, p: _count(t, 0, "previous_token_score", p["previous_token_threshold"]),
        "heads",
    ),
    "layer1_second_vector_heads": (
        lambda t, p: _count(t, 1, "key1_score", p["key1_threshold"]),
        "heads",
    ),
    "layer2_checkerboard": (
        lambda t, p: float(
            (
                _heads(t, 2)["same_parity_alternating"]
                - _heads(t, 2)["same_parity_non_alternating"]
            ).mean()
        ),
        "same-parity attention mass, alternating minus non-alternating, mean over layer-2 heads",
    ),
    "layer0_attribution_positive": (
        lambda t, p: float((_attribution(t, 0, p["loss_from_index"]) > 0).mean()),
        "share of layer-0 heads with positive mean attribution",
    ),
    "layer1_attribution_small": (
        lambda t, p: float(
            _attribution(t, 1, p["loss_from_index"]).abs().mean()
            / _attribution(t, 0, p["loss_from_index"]).abs().mean()
        ),
        "mean |attribution| of layer-1 heads / that of layer-0 heads",
    ),
    "layer2_attribution_negative": (
        lambda t, p: float((_attribution(t, 2, p["loss_from_index"]) < 0).mean()),
        "share of layer-2 heads with negative mean attribution",
    ),
    "layer0_ov_r2": (
        lambda t, p: float(_regressions(t, "residual")["r2"].mean()),
        "mean per-vector R^2",
    ),
    "layer0_ov_slope": (
        lambda t, p: ov_alpha(t["ov_regressions"]),
        "median per-vector slope",
    ),
    "random_ov_r2": (
        lambda t, p: float(_regressions(t, "random")["r2"].mean()),
        "mean per-vector R^2",
    ),
    "ov_r2_gap": (
        lambda t, p: float(
            _regressions(t, "residual")["r2"].mean() - _regressions(t, "random")["r2"].mean()
        ),
        "R^2 gap",
    ),
    "outside_embedding_share": (
        lambda t, p: float(t["embedding_span"]["share_outside"].mean()),
        "mean share; a random direction gives sqrt(1 - rank(W_E)/d_model), 0.83 for 40 in 128",
    ),
    "layer1_mean_ablation": (
        lambda t, p: float(t["mean_ablation"].iloc[-1]["ratio"]),
        "MSE ratio, all layer-1 heads mean-ablated / none",
    ),
    "layer1_ov_low_rank": (
        lambda t, p: float(_heads(t, 1)["ov_effective_rank"].median()),
        "median effective rank of layer-1 OVs (max d_head)",
    ),
    "layer2_negative_copying": (
        lambda t, p: _count(
            t, 2, "eigenvalue_score", p["negative_eigenvalue_threshold"], below=True
        ),
        "heads",
    ),
    "layer2_qk_identity": (
        lambda t, p: _count(t, 2, "qk_identity_d_model", p["qk_identity_threshold"]),
        "heads",
    ),
    "qk_intervention": (
        lambda t, p: (
            float(t["qk_intervention"]["ratio"].iloc[0])
            if t["qk_intervention"]["n_heads"].iloc[0] > 0
            else float("nan")
        ),
        "MSE ratio after / before; heads and why in qk_intervention.csv (picked_by)",
    ),
    "mlp_final_positions": (
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
    "layer0_estimate": (
        lambda t, p: float(
            t["residual_after_layer0"]
            .query("series == 'decoded residual after layer 0'")["cosine_to_target"]
            .mean()
        ),
        "mean cosine similarity with a_(n+1)",
    ),
    "layer0_shape": (
        lambda t, p: _correlation_at_alpha(t["residual_shape"], PAPER.alpha),
        "correlation over positions of the decoded residual after layer 0 with "
        f"a_n + {PAPER.alpha:g} a_(n-1) (the paper's alpha)",
    ),
}

CLAIMS: tuple[Claim, ...] = tuple(Claim(said, *MEASUREMENTS[said.id]) for said in PAPER_CLAIMS)


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
                "section": claim.said.section,
                "claim": claim.said.statement,
                "paper": claim.said.reported,
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


#: The colour class of each verdict in the HTML tables: green, amber, red, grey.
VERDICT_CLASSES: dict[str, str] = {
    REPRODUCED: "holds",
    DIFFERS: "partial",
    NOT_REPRODUCED: "fails",
    NOT_MEASURABLE: "unknown",
}

_LEGEND = {
    "holds": "reproduced: the criterion is met",
    "partial": "differs in degree: outside the criterion, inside its wider band",
    "fails": "not reproduced",
    "unknown": "not measurable in this run",
}

_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .4em; }
p { margin: .3em 0; }
.note { background: #fff3cd; border-left: 4px solid #e0a800; padding: .3em .6em; }
table { border-collapse: collapse; margin-top: .8em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; vertical-align: top; text-align: left; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td small { display: block; font-size: .8em; }
.holds { background: #c8e6c9; } .partial { background: #ffe0a3; }
.fails { background: #ffcdd2; } .unknown { background: #e0e0e0; }
.holds, .partial, .fails, .unknown { white-space: nowrap; }
td.long { min-width: 16em; }
.badge { padding: .1em .5em; border-radius: .6em; margin-right: .4em; white-space: nowrap; }
"""


def protocol_differences(run: RunConfig) -> list[str]:
    """Where a run's weight settings depart from the paper's protocol (:class:`RunConfig`'s
    defaults, as in config.yaml), as ``"train.steps = 200 (paper: 100000)"``; the seed and the
    logging cadence do not count."""
    paper = RunConfig().weights_dict()
    ran = run.weights_dict()
    return [
        f"{section}.{key} = {_plain(ran[section][key])} (paper: {_plain(value)})"
        for section, values in paper.items()
        for key, value in values.items()
        if key != "seed" and ran[section][key] != value
    ]


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


def _cell(value: Any) -> tuple[str, bool]:
    """A cell's text and whether it is a number."""
    if isinstance(value, float | np.floating):
        return ("n/a" if math.isnan(value) else f"{value:.4g}"), True
    if isinstance(value, int | np.integer):
        return str(value), True
    return str(value), False


def html_table(
    table: pd.DataFrame,
    title: str,
    intro: Sequence[str] = (),
    notes: Sequence[str] = (),
    classes: Mapping[str, Sequence[str]] | None = None,
    subtexts: Mapping[str, Sequence[str]] | None = None,
    legend: Mapping[str, str] = _LEGEND,
) -> str:
    """A stand-alone HTML page: ``title``, a paragraph per ``intro`` line, a highlighted one
    per warning in ``notes``, a colour legend and ``table``. ``classes`` gives, for some
    columns, each cell's colour class (a key of ``legend``); ``subtexts`` a small second line
    per cell. All text is escaped."""
    classes, subtexts = classes or {}, subtexts or {}
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in table.columns)
    rows = []
    for i in range(len(table)):
        cells = []
        for column in table.columns:
            text, numeric = _cell(table[column].iloc[i])
            colour = classes.get(column, [""] * len(table))[i]
            css = [c for c in (colour, numeric and "num", len(text) > 40 and "long") if c]
            sub = subtexts.get(column, [""] * len(table))[i]
            attr = f' class="{" ".join(css)}"' if css else ""
            extra = f"<small>{esc(sub)}</small>" if sub else ""
            cells.append(f"<td{attr}>{esc(text)}{extra}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    key = "".join(f'<span class="badge {c}">{esc(t)}</span>' for c, t in legend.items())
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{esc(title)}</h1>",
            *(f"<p>{esc(line)}</p>" for line in intro),
            *(f'<p class="note">{esc(n)}</p>' for n in notes),
            f"<p>Colours: {key}</p>",
            f"<table><thead><tr>{head}</tr></thead><tbody>",
            *rows,
            "</tbody></table></body></html>",
            "",
        ]
    )


def to_html(
    table: pd.DataFrame, title: str, intro: Sequence[str] = (), notes: Sequence[str] = ()
) -> str:
    """One run's claims table (:func:`claims_table`) as an HTML page, verdicts coloured and
    counted above the table; ``intro`` and ``notes`` (warnings) as in :func:`html_table`."""
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{v}: {counts[v]}" for v in VERDICT_CLASSES if v in counts)
    shown = table[
        ["section", "claim_id", "claim", "paper", "measured", "verdict", "measured_as", "criterion"]
    ].rename(columns={"claim_id": "id", "measured": "this run", "measured_as": "measured as"})
    return html_table(
        shown,
        title,
        [*intro, f"Verdicts: {summary}."],
        notes,
        classes={"verdict": [VERDICT_CLASSES.get(v, "") for v in table["verdict"]]},
    )
