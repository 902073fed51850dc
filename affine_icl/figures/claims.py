"""The claims as figures: the verdict sensitivity grid of one run and across runs, and every
claim measured over training (one panel per claim, one line per run).

:data:`VERDICT_COLOURS` are the claims tables' colours; :data:`RUN_COLOURS` tell runs apart in
any figure with one line per run."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from .style import draw_heatmap, suptitle

#: Verdict colours, as in the claims tables (green, amber, red, grey).
VERDICT_COLOURS = {
    "reproduced": "#66bb6a",
    "differs in degree": "#ffb74d",
    "not reproduced": "#e57373",
    "not measurable": "#bdbdbd",
    "not applicable": "#bdbdbd",
}


def _sensitivity_rows(grid: pd.DataFrame) -> list[tuple[str, str]]:
    """(claim_id, definition) in table order."""
    return list(dict.fromkeys(zip(grid["claim_id"], grid["definition"], strict=True)))


def _row_label(claim: str, definition: str) -> str:
    """A grid row's label: the claim id, or an alternative definition marked as one."""
    return claim if definition == "as configured" else f"↳ {definition}"


def _factor_labels(factors) -> list[str]:
    return [f"x{f:g}" + (" (as set)" if f == 1 else "") for f in factors]


#: What the factor does (affine_icl/margins.py): above 1 always stricter.
FACTOR_NOTE = (
    "strictness factor, above 1 stricter: the threshold's distance from chance times it for a "
    "claim that an effect exists (a count, a share), divided by it for a claim that there is "
    "none (an MSE ratio near 1, the final MSE)"
)


def plot_sensitivity(grid: pd.DataFrame, title: str) -> plt.Figure:
    """Claims (and their alternative definitions, marked ↳) x strictness factors, each cell coloured by
    its verdict and labelled with the threshold used (and, where the threshold decides which
    heads count, the count it gives); a row label ends with the measured value when it does
    not depend on the threshold."""
    rows = _sensitivity_rows(grid)
    factors = sorted(grid["factor"].unique())
    fig, ax = plt.subplots(figsize=(4.2 + 1.25 * len(factors), 0.34 * len(rows) + 1.8))
    for i, (claim, definition) in enumerate(rows):
        cells = grid[(grid["claim_id"] == claim) & (grid["definition"] == definition)]
        cells = cells.set_index("factor")
        varies = cells["measured"].nunique(dropna=False) > 1 or cells["varied"].iloc[0].startswith(
            "analysis."
        )
        for j, factor in enumerate(factors):
            cell = cells.loc[factor]
            ax.add_patch(
                plt.Rectangle((j, i), 1, 1, color=VERDICT_COLOURS[cell["verdict"]], ec="white")
            )
            text = f"{cell['threshold']:.3g}"
            if varies:
                text += f": {cell['measured']:.3g}"
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7)
    labels = []
    for claim, definition in rows:
        cells = grid[(grid["claim_id"] == claim) & (grid["definition"] == definition)]
        label = _row_label(claim, definition)
        if not cells["varied"].iloc[0].startswith("analysis."):
            label += f" = {cells['measured'].iloc[0]:.3g}"
        labels.append(label)
    ax.set_xlim(0, len(factors))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(np.arange(len(factors)) + 0.5, _factor_labels(factors), fontsize=8)
    ax.set_yticks(np.arange(len(rows)) + 0.5, labels, fontsize=8)
    ax.xaxis.tick_top()
    ax.grid(False)
    ax.set_xlabel(
        textwrap.fill(FACTOR_NOTE, 90)
        + "\n(cell: threshold, and the count it gives where it decides which heads count)",
        fontsize=8,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in VERDICT_COLOURS.values()]
    ax.legend(
        handles,
        list(VERDICT_COLOURS),
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize=8,
        title="verdict",
    )
    suptitle(fig, title)
    fig.tight_layout()
    return fig


def plot_sensitivity_across_runs(grid: pd.DataFrame, title: str) -> plt.Figure:
    """The sensitivity grid over runs: each cell is coloured by the share of runs in which the
    verdict is "reproduced" and says how many (k/n; n: the runs that judge the claim, those of
    the task families it applies to)."""
    rows = _sensitivity_rows(grid)
    factors = sorted(grid["factor"].unique())
    share = np.zeros((len(rows), len(factors)))
    n_runs = np.zeros((len(rows), 1), dtype=int)
    for i, (claim, definition) in enumerate(rows):
        cells = grid[(grid["claim_id"] == claim) & (grid["definition"] == definition)]
        held = cells.groupby("factor")["verdict"].apply(lambda v: (v == "reproduced").sum())
        share[i] = [held.get(f, 0) for f in factors]
        n_runs[i] = cells["run"].nunique()
    fig, ax = plt.subplots(figsize=(4.2 + 1.1 * len(factors), 0.34 * len(rows) + 1.8))
    draw_heatmap(
        share / n_runs,
        ax,
        check_overlap=False,  # its ticks are set below
        cmap="RdYlGn",
        vmin=0,
        vmax=1,
        annot=np.array(
            [[f"{int(k)}/{n}" for k in row] for row, n in zip(share, n_runs[:, 0], strict=True)]
        ),
        fmt="",
        annot_kws={"size": 7},
        cbar_kws={"label": "share of runs reproduced", "shrink": 0.4},
        linewidths=0.5,
        linecolor="white",
    )
    ax.set_xticks(np.arange(len(factors)) + 0.5, _factor_labels(factors), fontsize=8, rotation=0)
    ax.set_yticks(
        np.arange(len(rows)) + 0.5,
        [_row_label(c, d) for c, d in rows],
        fontsize=8,
        rotation=0,
    )
    ax.xaxis.tick_top()
    ax.set_xlabel(textwrap.fill(FACTOR_NOTE, 80), fontsize=9)
    suptitle(fig, title)
    fig.tight_layout()
    return fig


def _criterion_bands(criterion: Mapping) -> list[tuple[float, float, str]]:
    """The ranges of a claim's measurement that give each verdict, as (low, high, verdict),
    for shading: the "reproduced" range and the "differs in degree" range(s) around it."""
    inf = np.inf
    if "at_least" in criterion:
        x, y = criterion["at_least"], criterion.get("differs_down_to", criterion["at_least"])
        return [(x, inf, "reproduced"), (y, x, "differs in degree")]
    if "at_most" in criterion:
        x, y = criterion["at_most"], criterion.get("differs_up_to", criterion["at_most"])
        return [(-inf, x, "reproduced"), (x, y, "differs in degree")]
    lo, hi = criterion["within"]
    lo2, hi2 = criterion.get("differs_within", (lo, hi))
    return [(lo, hi, "reproduced"), (lo2, lo, "differs in degree"), (hi, hi2, "differs in degree")]


#: Line colours of runs, none of them a verdict colour (green, amber, red, grey).
RUN_COLOURS = ["#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79"]


def _log_scale(data: np.ndarray, span: np.ndarray) -> bool:
    """A log axis where every value drawn (data and band edges) is positive and they span more
    than two decades, unless the data are zero but for float noise (a linear axis shows that)."""
    if not len(span) or (span <= 0).any():
        return False
    return span.max() / span.min() > 100 and data.min(initial=np.inf) > 1e-6 * span.max()


def plot_claims_over_training(
    table: pd.DataFrame,
    criteria: Mapping[str, Mapping],
    paper: Mapping[str, str],
    title: str,
    settled: Mapping[str, float] | None = None,
) -> plt.Figure:
    """One small panel per claim: the measurement against the training step, one line per run
    (``table``: run, step, claim_id, measured, verdict), over the criterion's ranges shaded in
    the verdict colours (green: reproduced, amber: differs in degree; unshaded: not
    reproduced), with a dot at the last step in the colour of its verdict. The panel title
    gives the claim and the paper's value (``paper``, by claim id). A log scale where the
    values span more than two decades. ``settled`` (by claim id; :func:`~affine_icl.aggregate.
    verdict_settled_since`): a dotted line at the step from which every run's verdict stays
    what it is at the end."""
    claims = list(dict.fromkeys(table["claim_id"]))
    runs = list(dict.fromkeys(table["run"]))
    ncols = 4
    nrows = -(-len(claims) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.9 * nrows), squeeze=False)
    palette = {run: RUN_COLOURS[i % len(RUN_COLOURS)] for i, run in enumerate(runs)}
    for ax, claim in zip(axes.flat, claims, strict=False):
        sub = table[table["claim_id"] == claim]
        values = sub["measured"].dropna()
        bands = _criterion_bands(criteria[claim])
        finite = [e for lo, hi, _ in bands for e in (lo, hi) if np.isfinite(e)]
        span = np.array([*values, *finite], dtype=float)
        log = _log_scale(values.to_numpy(float), span)
        for run in runs:
            line = sub[sub["run"] == run].sort_values("step")
            if line.empty:  # the claim does not apply to this run's task family
                continue
            ax.plot(line["step"], line["measured"], "-", color=palette[run], lw=1.4, label=run)
            last = line.iloc[-1]
            ax.scatter(
                [last["step"]],
                [last["measured"]],
                s=45,
                color=VERDICT_COLOURS[last["verdict"]],
                edgecolor="black",
                zorder=3,
            )
        if len(span):
            low, high = span.min(), span.max()
            pad = (high / low) ** 0.08 if log else 0.08 * (high - low or abs(high) or 1.0)
            ylim = (low / pad, high * pad) if log else (low - pad, high + pad)
            for lo, hi, verdict in bands:
                ax.axhspan(
                    max(lo, ylim[0]),
                    min(hi, ylim[1]),
                    color=VERDICT_COLOURS[verdict],
                    alpha=0.25,
                    lw=0,
                )
            ax.set_ylim(*ylim)
        if log:
            ax.set_yscale("log")
        since = (settled or {}).get(claim, math.nan)
        if not math.isnan(since):
            ax.axvline(since, color="0.25", ls=":", lw=1.3, zorder=2)
            at_end = since >= sub["step"].max()  # label to the left of a line at the end
            ax.annotate(
                f"settled {since / 1000:g}k" if since >= 1000 else f"settled {since:g}",
                (since, 1),
                xycoords=("data", "axes fraction"),
                xytext=(-3 if at_end else 3, -3),
                textcoords="offset points",
                ha="right" if at_end else "left",
                va="top",
                fontsize=7,
                color="0.25",
            )
        ax.set_title(textwrap.fill(f"{claim} (paper: {paper.get(claim, '?')})", 48), fontsize=8.5)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_formatter(
            FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x >= 1000 else f"{x:g}")
        )
    for ax in axes.flat[len(claims) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("training step", fontsize=8)
    handles = [plt.Line2D([], [], color=palette[r], lw=1.4) for r in runs]
    labels = list(runs)
    for verdict in ("reproduced", "differs in degree"):
        handles.append(plt.Rectangle((0, 0), 1, 1, color=VERDICT_COLOURS[verdict], alpha=0.25))
        labels.append(f"range: {verdict}")
    for verdict, colour in VERDICT_COLOURS.items():
        handles.append(plt.Line2D([], [], ls="", marker="o", color=colour, markeredgecolor="black"))
        labels.append(f"at the end: {verdict}")
    if settled:
        handles.append(plt.Line2D([], [], color="0.25", ls=":", lw=1.3))
        labels.append("every run's verdict final from here on")
    fig.legend(
        handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False
    )
    suptitle(fig, title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
