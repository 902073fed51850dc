"""Sections 4.4 and 4.5: the OV circuits of layers 0 and 1.

The layer-0 OV fit on residual and random vectors (Figures 8 and 10), OV and QK matrices as
heatmaps (Figure 9, and 11-13, which draw layer 1's and layer 2's the same way), the share of
the layer-0 OV output outside the span of W_E, and the MSE with layer-1 heads mean-ablated."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..paper import PAPER
from .style import heatmap, legend_below, mse_points, suptitle, wrap_balanced

#: How the panels of :func:`plot_ov_regression` name each reading of the layer-0 OV fit
#: (``affine_icl.analysis.ov.layer0_ov_regressions``): title, x of a residual vector, x of a
#: random vector, y.
_OV_READINGS = {
    "d_model": (
        "d_model reading (x OV vs x)",
        "x_d (residual entering layer 0, after LN)",
        "x_d (random vector, matched norm)",
        "(x OV)_d, OV summed over layer-0 heads",
    ),
    "d_model, OV transposed": (
        "d_model reading, OV transposed (x OV^T vs x)",
        "x_d (residual entering layer 0, after LN)",
        "x_d (random vector, matched norm)",
        "(x OV^T)_d, OV summed over layer-0 heads",
    ),
    "d_model, unfolded": (
        "d_model reading, unfolded (x OV before LN folding)",
        "x_d (layer 0's LN output with its weight and bias)",
        "x_d (random vector, matched norm)",
        "(x OV)_d, unfolded W_V W_O summed over heads",
    ),
    "vocab": (
        "vocab reading (a W_E OV W_U vs a)",
        "a_d (input vector a_p)",
        "a_d (random vector, norm of a_p)",
        "(a W_E OV W_U)_d",
    ),
    "attention output": (
        "attention-output reading (vs a_(p-1))",
        "a_d (input a_(p-1), attended from p)",
        "a_d (random vector, norm of a_(p-1))",
        "(attn out at p, centred / LN_final scale, W_U)_d",
    ),
}


def _ov_scatter(ax, points: pd.DataFrame, fits: pd.DataFrame, reading: str) -> None:
    """One vector's (x_d, y_d) points in ``reading`` with the fitted line of its table row."""
    name, x_residual, x_random, ylabel = _OV_READINGS.get(reading, (reading, "x_d", "x_d", "y_d"))
    source, vector = points["source"].iloc[0], points["vector"].iloc[0]
    fit = fits[(fits["source"] == source) & (fits["vector"] == vector)].iloc[0]
    ax.scatter(points["x"], points["ov_x"], s=10, alpha=0.7)
    xs = np.linspace(points["x"].min(), points["x"].max(), 2)
    ax.plot(
        xs,
        fit["slope"] * xs + fit["intercept"],
        color="C3",
        label=f"fit: slope {fit['slope']:.2f}, intercept {fit['intercept']:.2f}, R² {fit['r2']:.2f}",
    )
    ax.set_xlabel(x_residual if source == "residual" else x_random)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{name}\none {source} vector (#{vector}), each dot a component d", fontsize=11)
    ax.locator_params(axis="x", nbins=6)  # small inputs (the vocab reading) crowd the ticks
    legend_below(ax, fontsize=10)


def _by_source(fits: pd.DataFrame, column: str, how: str) -> str:
    """``"0.83 residual, 0.60 random"``: ``how`` ("mean"/"median") of ``column`` per source."""
    values = fits.groupby("source", sort=False)[column].agg(how)
    return ", ".join(f"{value:.2f} {source}" for source, value in values.items())


def _slope_range(slopes: pd.Series, paper_slope) -> tuple[float, float]:
    """The slopes' 1st to 99th percentile (and the paper's range, if drawn), padded by 5%: a few
    outlying vectors would squeeze the histogram into one bin."""
    lo, hi = slopes.quantile(0.01), slopes.quantile(0.99)
    if paper_slope is not None:
        lo, hi = min(lo, paper_slope[0]), max(hi, paper_slope[1])
    pad = 0.05 * (hi - lo) or 0.5
    return lo - pad, hi + pad


def plot_ov_regression(
    points: pd.DataFrame,
    regressions: pd.DataFrame,
    title: str,
    paper_slope: tuple[float, float] | None = PAPER.ov_slope,
) -> plt.Figure:
    """One row of panels per reading of the layer-0 OV fit (``regressions``' ``reading`` column,
    "d_model" where it has none). Left: (x_d, y_d) for the vector of ``points`` in that reading
    with its fitted line. Middle and right: distribution of the per-vector R^2 and slope over the
    population, residual vs random vectors, with the paper's mean R^2 of each and (unless
    ``paper_slope`` is None) its slope range; the slope axis spans the 1st to 99th percentile of
    the reading's slopes (and the paper's range), its label counts the vectors outside. Every
    panel's title names its reading; the R^2 and slope panels give the mean R^2 and the median
    slope of each source, and the R^2 panel draws the chance level where the table has
    ``r2_chance``."""
    if "reading" not in regressions.columns:
        regressions = regressions.assign(reading="d_model")
    if "reading" not in points.columns:
        points = points.assign(reading="d_model")
    readings = list(dict.fromkeys(regressions["reading"]))
    fig, axes = plt.subplots(len(readings), 3, figsize=(18, 6.2 * len(readings)), squeeze=False)
    for row, reading in zip(axes, readings, strict=True):
        fits = regressions[regressions["reading"] == reading]
        name = _OV_READINGS.get(reading, (reading,))[0]
        shown = points[points["reading"] == reading]
        if shown.empty:
            row[0].set_axis_off()
        else:
            _ov_scatter(row[0], shown, fits, reading)
        slopes = _slope_range(fits["slope"], paper_slope)
        for ax, column, binrange in zip(row[1:], ("r2", "slope"), (None, slopes), strict=True):
            sns.histplot(
                data=fits,
                x=column,
                hue="source",
                ax=ax,
                stat="density",
                common_norm=False,
                bins=40,
                binrange=binrange,
                element="step",
            )
        row[1].axvline(
            PAPER.ov_r2_residual,
            linestyle="--",
            color="k",
            label=f"paper's mean R², residual vectors ({PAPER.ov_r2_residual:g})",
        )
        row[1].axvline(
            PAPER.ov_r2_random,
            linestyle="--",
            color="grey",
            label=f"paper's mean R², random vectors ({PAPER.ov_r2_random:g})",
        )
        if "r2_chance" in fits:
            chance = float(fits["r2_chance"].iloc[0])
            row[1].axvline(
                chance,
                linestyle=":",
                color="C3",
                label=f"chance: components shuffled, 1/(n-1) = {chance:.3f}",
            )
        row[1].set_title(f"{name}\nmean R²: {_by_source(fits, 'r2', 'mean')}", fontsize=11)
        row[1].set_xlabel("R² of the per-vector fit (dashed: paper's means)")
        legend_below(row[1], fontsize=10)
        if paper_slope is not None:
            row[2].axvspan(*paper_slope, color="k", alpha=0.1, label="paper's slope range")
        row[2].set_title(
            f"{name}\nmedian slope: {_by_source(fits, 'slope', 'median')}", fontsize=11
        )
        outside = int(((fits["slope"] < slopes[0]) | (fits["slope"] > slopes[1])).sum())
        row[2].set_xlim(*slopes)
        row[2].set_xlabel(
            "fitted slope per vector"
            + (f"\n({outside} of {len(fits)} outside the range shown)" if outside else "")
        )
        legend_below(row[2], fontsize=10)
    suptitle(fig, title)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the title
    return fig


def _tick_step(n: int) -> int:
    """Label every tick of a small matrix, every 5th (10th, ...) of a larger one."""
    for step in (1, 5, 10, 20, 50):
        if n <= 16 * step:
            return step
    return 100


def plot_matrices(
    table: pd.DataFrame,
    title: str,
    xlabel: str = "output dimension",
    ylabel: str = "input dimension",
) -> plt.Figure:
    """One diverging heatmap per matrix in the table (centred at 0), ticks labelled with the
    vector component index (every 5th or 10th on a large matrix); the axis labels name the
    basis when the matrix name does ("d_model basis", "d_vocab basis")."""
    names = list(dict.fromkeys(table["matrix"]))
    fig, axes = plt.subplots(1, len(names), figsize=(max(6.2 * len(names), 8), 5.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        sub = table[table["matrix"] == name].pivot(index="row", columns="col", values="value")
        lim = float(np.nanpercentile(np.abs(sub.values), 99.5)) or 1.0
        basis = next((b for b in ("d_model", "d_vocab") if f"{b} basis" in name), None)
        index = f"{basis} component index" if basis else "component index"
        heatmap(
            ax,
            sub,
            name,
            f"{xlabel} ({index})",
            f"{ylabel} ({index})",
            vmin=-lim,
            vmax=lim,
            cbar_kws={"label": "matrix entry"},
            xticklabels=_tick_step(sub.shape[1]),
            yticklabels=_tick_step(sub.shape[0]),
            check_overlap=False,  # upright labels, set here
        )
        ax.tick_params(axis="both", labelsize=8)
        ax.tick_params(axis="x", labelrotation=0)
        ax.tick_params(axis="y", labelrotation=0)
    suptitle(fig, title)
    fig.tight_layout()
    return fig


def plot_share_outside(
    table: pd.DataFrame, paper_share: float = PAPER.outside_embedding_share
) -> plt.Figure:
    """Histogram of the per-vector share with three reference lines, and a random direction's
    share ± 1 sd shaded; the title says how far this run's mean and the paper's share lie from
    a random direction's, in its sd (the claim is judged so). The lines can coincide
    (a random direction's share is close to the paper's), so each has its own style, width and
    end marker and the thinner ones are drawn on top of the wider ones."""
    fig, ax = plt.subplots(figsize=(11, 4.5))
    sns.histplot(table["share_outside"], bins=50, ax=ax, stat="count", zorder=1)
    mean = table["share_outside"].mean()
    common = dict(markevery=[1], markersize=9, clip_on=False)  # marker at the top end
    ax.axvline(
        mean,
        color="C3",
        linewidth=4,
        alpha=0.8,
        zorder=3,
        marker="o",
        label=f"this run: mean {mean:.1%}",
        **common,
    )
    ax.axvline(
        paper_share,
        color="k",
        linestyle="--",
        linewidth=1.5,
        zorder=4,
        marker="s",
        label=f"paper: {paper_share:.2%}",
        **common,
    )
    chance = table["chance_share"].iloc[0]
    ax.axvline(
        chance,
        color="C2",
        linestyle=(0, (1, 1.5)),
        linewidth=2.5,
        zorder=5,
        marker="v",
        label=f"a random direction: {chance:.1%}\n(sqrt(1 - rank W_E / d_model))",
        **common,
    )
    title = "Share of layer-0 OV output outside the embedding space"
    if "chance_share_sd" in table:  # tables from before the sd have only the mean
        sd = table["chance_share_sd"].iloc[0]
        ax.axvspan(
            chance - sd,
            chance + sd,
            color="C2",
            alpha=0.15,
            lw=0,
            zorder=0,
            label=f"a random direction's share ± 1 sd ({sd:.3f})",
        )
        title += (
            f"\nthis run {(mean - chance) / sd:+.2f} sd from a random direction's share, "
            f"the paper {(paper_share - chance) / sd:+.2f} sd"
        )
    ax.set_xlabel("||x OV outside span(W_E)|| / ||x OV||, per residual vector")
    ax.set_ylabel("number of residual vectors")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # outside the data
    fig.tight_layout()
    return fig


def plot_mean_ablation(
    table: pd.DataFrame, paper_mse: float | None = PAPER.mean_ablation_mse
) -> plt.Figure:
    """MSE with each head of the layer (then all of them) mean-ablated, as labelled points, with
    the unablated MSE and the paper's all-heads-ablated MSE as labelled reference lines."""
    layer = table["layer"].iloc[0]
    before = table["mse_before"].iloc[0]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(table) + 2.2))
    refs = [(before, f"no ablation: {before:.4g}", dict(color="C3", linewidth=1.5))]
    if paper_mse is not None:
        refs.append(
            (
                paper_mse,
                f"paper, all layer-{layer} heads ablated: {paper_mse:g}",
                dict(color="k", linestyle="--", linewidth=1.2),
            )
        )
    mse_points(
        ax,
        table["ablated"].tolist(),
        table["mse_after"],
        [f" (x{r:.4f})" for r in table["ratio"]],
        refs,
        "MSE with the head(s) mean-ablated",
        "MSE on predicted terms (log scale); in brackets: ratio to no ablation",
    )
    ax.set_ylabel("mean-ablated head(s)")
    n = f", {table['n_sequences'].iloc[0]} sequences" if "n_sequences" in table else ""
    ax.set_title(
        wrap_balanced(
            f"Mean ablation of layer-{layer} heads: each head alone, then all together "
            f"(output replaced by its population mean{n})",
            90,
        ),
        fontsize=10,
    )
    fig.tight_layout()
    return fig
