"""Tables behind the figures (pure functions of data) and the plots drawn from those tables.

Every figure is a pair: ``<name>_table(...) -> DataFrame`` computes, ``plot_<name>(table)``
draws. Scripts write both the PNG and the table, so a reader can check any plotted number.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import math
import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .paper import PAPER

sns.set_theme(style="whitegrid", context="notebook")


# --------------------------------------------------------------------------- Figure 1


def sequence_types_table(examples: pd.DataFrame, dims_shown: int) -> pd.DataFrame:
    """Figure 1's data: the example sequences, first ``dims_shown`` vector components.

    Rows keep the regimes in the order given (the paper's: oscillating, decaying, growing).
    """
    table = examples[examples["dim"] < dims_shown]
    order = {name: i for i, name in enumerate(dict.fromkeys(table["sequence_type"]))}
    table = table.assign(_order=table["sequence_type"].map(order))
    table = table.sort_values(["_order", "dim", "n"]).drop(columns="_order")
    return table.reset_index(drop=True)


def plot_sequence_types(table: pd.DataFrame) -> plt.Figure:
    """One panel per regime (oscillating, decaying, growing); one line per vector component."""
    types = list(dict.fromkeys(table["sequence_type"]))
    fig, axes = plt.subplots(1, len(types), figsize=(5 * len(types), 4), squeeze=False)
    n_dims = table["dim"].nunique()
    palette = sns.color_palette("husl", n_dims)
    for ax, name in zip(axes[0], types, strict=True):
        sub = table[table["sequence_type"] == name]
        sns.lineplot(
            data=sub,
            x="n",
            y="value",
            hue="dim",
            palette=palette,
            legend=False,
            ax=ax,
            linewidth=1,
            marker="o",
            markersize=3,
        )
        ax.set_title(f"{name}, c = {sub['c'].iloc[0]:.2f}")
        ax.set_xlabel("term index n")
        ax.set_ylabel("component value of a_n (normalised)")
    fig.suptitle(
        f"Figure 1: types of affine recurrence a_n = c a_(n-1) + d ({n_dims} components, one colour each)"
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Figure 2


def loss_curve_table(log: pd.DataFrame) -> pd.DataFrame:
    """Figure 2's data in long form: step, series (train loss / held-out MSE), value."""
    long = log.melt(
        id_vars="step",
        value_vars=["train_loss", "heldout_mse"],
        var_name="series",
        value_name="mse",
    ).dropna(subset=["mse"])
    names = {
        "train_loss": "training loss (mean over log window)",
        "heldout_mse": "held-out MSE (evaluation population subset)",
    }
    long["series"] = long["series"].map(names)
    return long.reset_index(drop=True)


def plot_loss_curve(table: pd.DataFrame, paper_mse: float = PAPER.final_mse) -> plt.Figure:
    """MSE against optimizer step on a log scale, with the paper's reported final MSE."""
    fig, ax = plt.subplots(figsize=(11, 4.5))
    sns.lineplot(data=table, x="step", y="mse", hue="series", ax=ax, linewidth=1.2)
    ax.set_yscale("log")
    ax.axhline(
        paper_mse,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"paper's final MSE ({paper_mse:g})",
    )
    held = table[table["series"].str.startswith("held-out")]
    if len(held):
        ax.text(  # under the legend, outside the data
            1.02,
            0.68,
            f"final held-out MSE {held['mse'].iloc[-1]:.2e}",
            ha="left",
            va="top",
            transform=ax.transAxes,
            fontsize=9,
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("MSE on predicted terms a_3 onward (log scale)")
    ax.set_title("Figure 2: loss as a function of training steps")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)  # outside the data
    fig.tight_layout()
    return fig


def plot_sweep_loss_curves(
    curves: pd.DataFrame, finals: pd.DataFrame, paper_mse: float = PAPER.final_mse
) -> plt.Figure:
    """Held-out MSE against step for every run of a sweep, log scale: one thin line per seed in
    its setting's colour, the setting's median over seeds thick, the paper's final MSE dashed;
    each setting's final median and range in the legend."""
    fig, ax = plt.subplots(figsize=(11, 5))
    palette = dict(
        zip(finals["setting"], sns.color_palette("colorblind", len(finals)), strict=True)
    )
    for _, part in curves.groupby("run", sort=False):
        ax.plot(
            part["step"],
            part["heldout_mse"],
            color=palette[part["setting"].iloc[0]],
            lw=0.7,
            alpha=0.45,
        )
    for row in finals.itertuples():
        part = curves[curves["setting"] == row.setting]
        median = part.groupby("step")["heldout_mse"].median()
        ax.plot(
            median.index,
            median.to_numpy(),
            color=palette[row.setting],
            lw=2.4,
            label=f"{row.setting}: median of {row.runs} seed{'s' if row.runs > 1 else ''}; "
            f"at step {row.steps:,} "
            f"{row.median_final_mse:.2e} ({row.min_final_mse:.2e}-{row.max_final_mse:.2e})",
        )
    ax.axhline(
        paper_mse, color="black", linestyle="--", lw=1, label=f"paper's final MSE ({paper_mse:g})"
    )
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("held-out MSE, a_3 onward (log scale)")
    ax.set_title(
        "Held-out MSE over training, every run of the sweep (thin: one seed; thick: median)"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- in-context baselines


def plot_baselines(table: pd.DataFrame, loss_from: int, title: str) -> plt.Figure:
    """MSE against output position, log scale, one line per predictor; the positions outside
    the training loss shaded."""
    fig, ax = plt.subplots(figsize=(8, 6.5))
    styles = {
        "model": ("k", "-", 2.5),
        "least squares": ("#1b9e77", "--", 2),
        "repeat last": ("#7570b3", ":", 2),
        "linear extrapolation": ("#d95f02", ":", 2),
    }
    for name, sub in table.groupby("predictor", sort=False):
        colour, dash, width = styles[name]
        sub = sub.dropna(subset=["mse"])
        means = sub["means"].iloc[0] if len(sub) else ""
        label = name if means in ("", "the trained model") else f"{name}: {means}"
        ax.plot(
            sub["position"], sub["mse"], dash, color=colour, lw=width, marker="o", ms=4, label=label
        )
    ax.axvspan(-0.5, loss_from - 0.5, color="0.9", zorder=0, label="not in the training loss")
    ax.set_yscale("log")
    ax.set_xlim(-0.5, table["position"].max() + 0.5)
    ax.set_xlabel("output position n (predicting a_(n+1) from a_0 .. a_n)")
    ax.set_ylabel("MSE (log scale)")
    _legend_below(ax, ncol=1, fontsize=9)
    fig.subplots_adjust(top=0.84, bottom=0.33)
    _suptitle(fig, title)
    return fig


def plot_not_applicable(reason: str) -> plt.Figure:
    """A figure that exists for the DAG's sake and says, as its only content, why it is empty."""
    fig = plt.figure(figsize=(8, 3))
    fig.text(0.5, 0.5, textwrap.fill(reason, 70), ha="center", va="center", fontsize=13)
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- helpers for section 4


def _wrap_balanced(line: str, width: int) -> str:
    """``line`` wrapped at word boundaries into as few lines as ``width`` allows, of about equal
    length, so that no short fragment is left alone on the last line."""
    if len(line) <= width:
        return line
    n_lines = len(textwrap.wrap(line, width))
    for w in range(-(-len(line) // n_lines), width + 1):
        wrapped = textwrap.wrap(line, w)
        if len(wrapped) <= n_lines:
            return "\n".join(wrapped)
    return textwrap.fill(line, width)


def _suptitle(fig: plt.Figure, title: str) -> None:
    """A figure title wrapped to the figure's width, so a long title is never cut off."""
    width = max(30, int(fig.get_figwidth() * 8))  # about 8 characters per inch at this size
    lines = [_wrap_balanced(line, width) for line in title.split("\n")]
    fig.suptitle("\n".join(lines))


def _heatmap(ax, matrix, title, xlabel, ylabel, center=0.0, annotate=False, cmap="RdBu_r", **kw):
    sns.heatmap(
        matrix,
        ax=ax,
        center=center,
        cmap=cmap,
        annot=annotate,
        fmt=".2f" if annotate else "",
        annot_kws={"size": 8},
        cbar=True,
        square=False,
        **kw,
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _legend_below(ax, ncol: int = 1, fontsize: int = 8) -> None:
    """One legend under ``ax`` (outside the data) with seaborn's hue entries, if any, followed
    by every labelled artist drawn on ``ax`` (reference lines, spans, fits)."""
    handles, labels = [], []
    old = ax.get_legend()
    if old is not None:  # seaborn's hue legend: keep its entries
        handles += list(old.legend_handles)
        labels += [t.get_text() for t in old.get_texts()]
        old.remove()
    for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        ncol=ncol,
        fontsize=fontsize,
        frameon=False,
    )


def plot_attention_patterns(
    table: pd.DataFrame, title: str, notes: Mapping[int, str] | None = None
) -> plt.Figure:
    """One heatmap per head: rows are query (destination) positions, columns key (source);
    ``notes`` adds a line under a head's title (its score against chance)."""
    heads = sorted(table["head"].unique())
    cols = min(4, len(heads))
    rows = -(-len(heads) // cols)
    size = 3.6 if len(heads) > 1 else 6.0  # a single pattern is drawn large
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(size * cols + 0.8, 0.92 * size * rows + 0.6),
        squeeze=False,
        layout="constrained",  # makes room for the shared colourbar
    )
    # a grid may have spare axes
    for ax, head in zip(axes.flat, heads, strict=False):
        sub = table[table["head"] == head].pivot(index="query", columns="key", values="weight")
        sns.heatmap(sub, ax=ax, vmin=0, vmax=1, cmap="viridis", cbar=False, square=True)
        # upright position labels in every panel (seaborn turns crowded ones sideways)
        ax.tick_params(axis="both", labelrotation=0, labelsize=8)
        note = (notes or {}).get(head)
        ax.set_title(
            f"layer {table['layer'].iloc[0]} head {head}" + (f"\n{note}" if note else ""),
            fontsize=10 if not note else 9,
        )
        ax.set_xlabel("key (source) position")
        ax.set_ylabel("query (destination) position")
    for ax in list(axes.flat)[len(heads) :]:
        ax.axis("off")
    # every panel is drawn on the same 0..1 scale, so one colourbar serves them all
    fig.colorbar(
        axes.flat[0].collections[0],
        ax=axes,
        label="attention weight",
        shrink=0.9 if rows > 1 else 0.8,
        pad=0.02,
    )
    _suptitle(fig, title)
    return fig


def plot_component_attribution(table: pd.DataFrame, title: str) -> plt.Figure:
    """Heatmaps of mean direct attribution, component by position, one panel per variant."""
    variants = list(dict.fromkeys(table["variant"]))
    order = list(dict.fromkeys(table["component"]))
    fig, axes = plt.subplots(
        1, len(variants), figsize=(7 * len(variants), 0.28 * len(order) + 2.5), squeeze=False
    )
    for ax, variant in zip(axes[0], variants, strict=True):
        sub = (
            table[table["variant"] == variant]
            .pivot(index="component", columns="position", values="attribution")
            .loc[order]
        )
        _heatmap(
            ax,
            sub,
            f"<ln_final(output) W_U, {variant.replace('target', 'a_(m+1)').replace('input', 'a_m')}>",
            "position m",
            "component",
        )
    _suptitle(fig, title)
    fig.tight_layout()
    return fig


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
    _legend_below(ax, fontsize=10)


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
        _legend_below(row[1], fontsize=10)
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
        _legend_below(row[2], fontsize=10)
    _suptitle(fig, title)
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
        _heatmap(
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
        )
        ax.tick_params(axis="both", labelsize=8)
        ax.tick_params(axis="x", labelrotation=0)
        ax.tick_params(axis="y", labelrotation=0)
    _suptitle(fig, title)
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


def fallback_pick(reason) -> str | None:
    """What a head choice fell back on, if it did: the reason written by
    ``selection.heads_above_or_top`` reads "no layer-L head has SCORE >= T; the k highest
    instead: ..." when no head passed the threshold. None for a regular pick (or no reason)."""
    if not isinstance(reason, str) or not reason.startswith("no ") or " instead" not in reason:
        return None
    return reason.split(";")[0]  # "no layer-2 head has qk_identity_d_model >= 0.3"


def _mse_points(ax, labels, values, notes, refs, label: str, xlabel: str) -> None:
    """MSE values as points on a log x axis, one row per label, each value (and its note)
    written next to its point; ``refs`` are (x, label, style) reference lines; the legend goes
    right of the axes, outside the data."""
    y = np.arange(len(labels))
    values = np.asarray(values, dtype=float)
    ax.scatter(values, y, s=55, color="C0", zorder=5, label=label)
    for yi, value, note in zip(y, values, notes, strict=True):
        ax.annotate(
            f"{value:.4g}{note}",
            (value, yi),
            xytext=(9, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            zorder=6,
        )
    for x, ref_label, style in refs:
        ax.axvline(x, label=ref_label, zorder=2, **style)
    ax.set_xscale("log")
    xs = np.concatenate([values, [x for x, _, _ in refs]])
    span = max(np.log10(xs.max() / xs.min()), 0.3)  # decades shown
    ax.set_xlim(xs.min() / 10 ** (0.1 * span), xs.max() * 10 ** (0.8 * span))  # room for text
    ax.set_yticks(y, labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first label on top
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # outside the data


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
    _mse_points(
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
        _wrap_balanced(
            f"Mean ablation of layer-{layer} heads: each head alone, then all together "
            f"(output replaced by its population mean{n})",
            90,
        ),
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_sequence_series(table: pd.DataFrame, title: str, series: list[str]) -> plt.Figure:
    """One panel per dimension; x is the position n, one line per named series."""
    dims = sorted(table["dim"].unique())
    fig, axes = plt.subplots(
        1,
        len(dims),
        figsize=(5.2 * len(dims), 4 + 0.25 * -(-len(series) // 3)),
        squeeze=False,
        layout="constrained",  # makes room for the legend under the panels
    )
    colours = dict(zip(series, sns.color_palette(n_colors=len(series)), strict=True))
    for ax, d in zip(axes[0], dims, strict=True):
        sub = table[(table["dim"] == d) & table["series"].isin(series)]
        sns.lineplot(
            data=sub,
            x="n",
            y="value",
            hue="series",
            hue_order=series,
            palette=colours,
            marker="o",
            ax=ax,
            legend=False,
        )
        ax.set_title(f"dimension {d}")
        ax.set_xlabel("position n (output predicts a_(n+1))")
        ax.set_ylabel("value")
    # one legend for all panels, under them (outside the data); same colours in every panel
    handles = [plt.Line2D([], [], color=colours[name], marker="o", label=name) for name in series]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(series)), fontsize=9)
    _suptitle(fig, title)
    return fig


def plot_head_scores(
    table: pd.DataFrame,
    value: str,
    title: str,
    center: float = 0.0,
    vmin: float = -1,
    vmax: float = 1,
    effect: str | None = None,
) -> plt.Figure:
    """Layer-by-head heatmap of a per-head score, numbers printed in the cells; with
    ``effect`` (a z column), each cell's second line gives it ("z -6.1")."""
    grid = table.pivot(index="layer", columns="head", values=value)
    text = grid.map(lambda v: f"{v:.2f}")
    if effect is not None:
        z = table.pivot(index="layer", columns="head", values=effect)
        text = text + z.map(lambda e: f"\nz {e:.1f}")
    fig, ax = plt.subplots(figsize=(1.05 * grid.shape[1] + 2.4, 0.9 * grid.shape[0] + 2.2))
    sns.heatmap(
        grid,
        ax=ax,
        center=center,
        cmap="RdBu_r",
        annot=text.to_numpy(),
        fmt="",
        annot_kws={"size": 8},
        vmin=vmin,
        vmax=vmax,
        cbar_kws={"label": value},
    )
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    _suptitle(fig, title)
    fig.tight_layout()
    return fig


_SCALE_LABELS = {
    "unit": "unit projection",
    "frobenius": "scaled to the QK's Frobenius norm",
    "trace": "scaled to the QK's trace",
}


def plot_before_after(
    table: pd.DataFrame, title: str, paper_mse: float | None = None
) -> plt.Figure:
    """MSE before and after an intervention on ``row["heads"]``, as labelled points with the
    paper's after-intervention MSE as a labelled reference line; one "after" point per row
    (per ``scale`` where the table has one). The title names the heads and how they were
    picked, and says "(fallback pick: ...)" when no head passed the threshold."""
    row = table.iloc[0]
    scales = table["scale"].tolist() if "scale" in table else [None]
    fig, ax = plt.subplots(figsize=(11, 2.6 + 0.4 * len(scales)))
    refs = []
    if paper_mse is not None:
        refs.append(
            (
                paper_mse,
                f"paper, after: {paper_mse:g}",
                dict(color="k", linestyle="--", linewidth=1.2),
            )
        )
    _mse_points(
        ax,
        ["before"] + [f"after, {_SCALE_LABELS[s]}" if s else "after" for s in scales],
        [row["mse_before"], *table["mse_after"]],
        ["", *(f" (x{r:.6f})" for r in table["ratio"])],
        refs,
        "MSE of this run",
        "MSE on predicted terms (log scale); in brackets: ratio after / before",
    )
    reason = row.get("picked_by")
    fallback = fallback_pick(reason)
    heads = f"heads: {row['heads']}"
    if fallback is not None:
        heads += f" (fallback pick: {fallback}, so the {row['n_heads']} highest-scoring instead)"
    elif isinstance(reason, str):
        heads += f" (picked: {reason.split(':')[0]})"
    ax.set_title(f"{title}\n{_wrap_balanced(heads, 110)}", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- across runs


def plot_ranked_heads_by_run(
    ranked: pd.DataFrame, score: str, title: str, center: float = 0.0
) -> plt.Figure:
    """One heatmap per layer: rows are runs, columns heads ordered by ``score`` (rank 0 first)."""
    layers = sorted(ranked["layer"].unique())
    fig, axes = plt.subplots(
        1,
        len(layers),
        figsize=(6.0 * len(layers), 0.45 * ranked["run"].nunique() + 2.2),
        squeeze=False,
    )
    lim = float(ranked[score].abs().max()) or 1.0
    for ax, layer in zip(axes[0], layers, strict=True):
        grid = ranked[ranked["layer"] == layer].pivot(index="run", columns="rank", values=score)
        _heatmap(
            ax,
            grid,
            f"layer {layer}",
            "heads ordered by score (rank)",
            "run",
            center=center,
            annotate=grid.size <= 64,
            vmin=-lim,
            vmax=lim,
        )
    _suptitle(fig, title)
    fig.tight_layout()
    return fig


def plot_ov_fit_by_run(fits: pd.DataFrame) -> plt.Figure:
    """Mean R^2 (residual vs random vectors) and median slope of the layer-0 OV fit, per run,
    one row of panels per reading (the d_model basis first)."""
    readings = list(dict.fromkeys(fits["reading"])) if "reading" in fits else [None]
    fig, grid = plt.subplots(len(readings), 2, figsize=(11, 4.0 * len(readings)), squeeze=False)
    for axes, reading in zip(grid, readings, strict=True):
        shown = fits if reading is None else fits[fits["reading"] == reading]
        _ov_fit_row(axes, shown, reading)
    _suptitle(fig, "Layer-0 OV fit (Figure 8) in every run")
    fig.tight_layout()
    return fig


def _ov_fit_row(axes, fits: pd.DataFrame, reading: str | None) -> None:
    where = f" ({reading} reading)" if reading else ""
    sns.pointplot(
        data=fits,
        x="run",
        y="mean_r2",
        hue="source",
        hue_order=["residual", "random"],
        palette=["C0", "C1"],
        ax=axes[0],
        linestyle="none",
    )
    axes[0].axhline(PAPER.ov_r2_residual, color="C0", linestyle="--", label="paper, residual")
    axes[0].axhline(PAPER.ov_r2_random, color="C1", linestyle="--", label="paper, random")
    axes[0].set_ylabel("mean per-vector R²")
    axes[0].set_title(f"mean R²{where}", fontsize=10)
    axes[0].legend(fontsize=8)
    resid = fits[fits["source"] == "residual"]
    sns.pointplot(data=resid, x="run", y="median_slope", ax=axes[1], linestyle="none", color="C0")
    axes[1].axhspan(*PAPER.ov_slope, color="k", alpha=0.1, label="paper's range")
    axes[1].set_ylabel("median slope (residual vectors)")
    axes[1].set_title(f"median slope{where}", fontsize=10)
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)


# --------------------------------------------------------------------------- verdict sensitivity

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
    _suptitle(fig, title)
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
    sns.heatmap(
        share / n_runs,
        ax=ax,
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
    _suptitle(fig, title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- claims over training


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
            matplotlib.ticker.FuncFormatter(
                lambda x, _: f"{x / 1000:g}k" if x >= 1000 else f"{x:g}"
            )
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
    _suptitle(fig, title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


# --------------------------------------------------------------------------- across task families


def plot_across_tasks(table: pd.DataFrame, title: str) -> plt.Figure:
    """Four panels, one column per task (one point per run): MSE of the model and of the
    least-squares floor (log), head counts, negative-copying share per layer, layer-1
    mean-ablation ratio (log); the numbers beneath as a table."""
    tasks = list(dict.fromkeys(table["task"]))
    x = table["task"].map({t: i for i, t in enumerate(tasks)}).to_numpy(float)
    fig = plt.figure(figsize=(16, 10))
    grid = fig.add_gridspec(2, 4, height_ratios=[3, 1.5], hspace=0.55, wspace=0.35)
    axes = [fig.add_subplot(grid[0, i]) for i in range(4)]

    def points(ax, column, label, offset=0.0, marker="o", colour=None):
        ax.scatter(
            x + offset, table[column], label=label, marker=marker, color=colour, s=45, zorder=3
        )

    points(axes[0], "model_mse", "model", -0.12, "o", "k")
    points(axes[0], "least_squares_mse", "least squares (floor)", 0.12, "s", "#1b9e77")
    points(axes[0], "repeat_last_mse", "repeat last", 0.0, "x", "#8da0cb")
    axes[0].set_yscale("log")
    axes[0].set_title("MSE over the trained positions", fontsize=10)
    points(axes[1], "previous_token_heads", "previous vector", -0.1, "o", "#d95f02")
    if table["offset_k_heads"].notna().any():
        points(axes[1], "offset_k_heads", "k previous vectors (linear)", 0.1, "D", "#7570b3")
    axes[1].set_title("layer-0 heads reading them (>= 2x uniform)", fontsize=10)
    axes[1].set_ylim(-0.5, table["heads_per_layer"].max() + 0.5)
    axes[1].set_ylabel("heads (of each layer's)")
    layers = sorted(c for c in table.columns if c.startswith("negative_copying_share_layer"))
    colours = sns.color_palette("Blues", len(layers) + 1)[1:]
    for i, (column, colour) in enumerate(zip(layers, colours, strict=True)):
        offset = (i - (len(layers) - 1) / 2) * 0.12
        points(
            axes[2],
            column,
            f"layer {column.removeprefix('negative_copying_share_layer')}",
            offset,
            "o",
            colour,
        )
    axes[2].set_ylim(-0.05, 1.05)
    axes[2].set_title("share of heads copying negatively (OV z)", fontsize=10)
    points(axes[3], "layer1_mean_ablation_ratio", "all layer-1 heads", 0.0, "o", "#e7298a")
    axes[3].axhline(1.0, color="0.5", ls=":", label="no change")
    ratios = table["layer1_mean_ablation_ratio"].dropna()
    if len(ratios) and ratios.max() / max(ratios.min(), 1e-12) > 10:
        axes[3].set_yscale("log")
    axes[3].set_title("MSE ratio, layer 1 mean-ablated", fontsize=10)
    axes[3].set_ylim(0 if axes[3].get_yscale() == "linear" else None, None)
    for ax in axes:
        ax.set_xticks(range(len(tasks)), tasks, rotation=30)
        ax.set_xlim(-0.6, len(tasks) - 0.4)
        _legend_below(ax)
    shown = table[["task", "run", "model_mse", "least_squares_mse", "repeat_last_mse"]].copy()
    shown["prev. heads"] = table["previous_token_heads"]
    shown["k-prev. heads"] = table["offset_k_heads"]
    for column in layers:
        shown[f"neg. copy L{column.removeprefix('negative_copying_share_layer')}"] = table[column]
    shown["L1 ablation ratio"] = table["layer1_mean_ablation_ratio"]
    cells = [
        [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row]
        for row in shown.itertuples(index=False)
    ]
    cells = [["-" if c == "nan" else c for c in row] for row in cells]
    ax_table = fig.add_subplot(grid[1, :])
    ax_table.axis("off")
    drawn = ax_table.table(
        cellText=cells, colLabels=list(shown.columns), loc="center", cellLoc="center"
    )
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    drawn.scale(1, 1.3)
    _suptitle(fig, title)
    return fig


# --------------------------------------------------------------------------- mechanism atlas


#: Atlas markers: the verdict of most seeds, white where the seeds split evenly.
ATLAS_COLOURS = {**VERDICT_COLOURS, "seeds disagree": "white"}


def plot_atlas(table: pd.DataFrame, axes: list[str], title: str) -> plt.Figure:
    """One row of panels per claim, one column per swept setting: the claim's measurement
    against the setting's values; one marker per combination of the other settings (the mean
    over seeds), bars from the lowest to the highest seed, points coloured by the verdict of
    most seeds (``seeds_verdict`` of :func:`affine_icl.atlas.atlas_table`; white where they
    split evenly), a grey dash at what chance gives there. A claim that does not apply at a
    value has no point there (said in the panel)."""
    claims = list(dict.fromkeys(table["claim_id"]))
    height = 2.6 * len(claims) + 2.0  # inches: the panels, the title above, the legend below
    # wide enough for the legend's row and a title of a few lines, even with one setting
    width = max(4.2 * len(axes) + 1, 8.0)
    fig, grid = plt.subplots(len(claims), len(axes), figsize=(width, height), squeeze=False)
    for i, claim in enumerate(claims):
        sub = table[table["claim_id"] == claim]
        absent = sub["verdict"] == "not applicable"
        where = ", ".join(  # the settings at which no run judges the claim
            f"{a.split('.')[-1]} {v}"
            for a in axes
            for v, rows in absent.groupby(sub[a], sort=False)
            if rows.all()
        )
        for j, axis in enumerate(axes):
            ax = grid[i, j]
            others = [a for a in axes if a != axis]
            values = list(dict.fromkeys(sub[axis]))
            groups = sub.groupby(others, sort=False) if others else [((), sub)]
            for k, (key, part) in enumerate(groups):
                key = key if isinstance(key, tuple) else (key,)
                label = ", ".join(
                    f"{a.split('.')[-1]} {v}" for a, v in zip(others, key, strict=True)
                )
                stats = part.groupby(axis, sort=False).agg(
                    mean=("measured", "mean"),
                    min=("measured", "min"),
                    max=("measured", "max"),
                    chance=("chance", "mean"),
                )
                stats = stats.reindex(values).dropna(subset=["mean"])
                if stats.empty:
                    continue
                x = [values.index(v) + 0.08 * (k - 0.5) for v in stats.index]
                colour = RUN_COLOURS[k % len(RUN_COLOURS)]
                ax.errorbar(
                    x,
                    stats["mean"],
                    yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                    fmt="-o",
                    color=colour,
                    ms=5,
                    capsize=3,
                    lw=1.2,
                    label=label or "all runs",
                )
                ax.plot(
                    x, stats["chance"], ls="", marker="_", ms=14, mew=2, color="0.45", gid="chance"
                )
                for xi, v in zip(x, stats.index, strict=True):
                    verdict = part.loc[part[axis] == v, "seeds_verdict"].iloc[0]
                    ax.scatter(
                        [xi],
                        [stats.loc[v, "mean"]],
                        s=60,
                        zorder=3,
                        edgecolor="black",
                        color=ATLAS_COLOURS.get(verdict, "#bdbdbd"),
                    )
            if where:
                ax.text(
                    0.02,
                    0.96,
                    f"not applicable where {where}",
                    transform=ax.transAxes,
                    fontsize=7,
                    va="top",
                    color="0.3",
                )
            ax.set_xticks(range(len(values)), [str(v) for v in values])
            ax.set_xlim(-0.5, len(values) - 0.5)
            ax.set_xlabel(axis, fontsize=8)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(textwrap.fill(claim.replace("_", " "), 24), fontsize=8)
            if i == 0 and others:
                ax.legend(fontsize=6, loc="best")
    handles = [
        plt.Line2D([], [], marker="o", ls="", color=c, mec="black", label=v)
        for v, c in ATLAS_COLOURS.items()
        if v != "not applicable"
    ]
    if table["chance"].notna().any():  # the dash only where some claim has a chance level
        handles.append(
            plt.Line2D([], [], marker="_", ms=14, mew=2, ls="", color="0.45", label="chance")
        )
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=6,
        fontsize=8,
        frameon=False,
        title="marker fill: the verdict of most seeds (white: two verdicts tie)",
        title_fontsize=8,
    )
    _suptitle(fig, title)
    title_lines = fig.get_suptitle().count("\n") + 1
    fig.subplots_adjust(
        bottom=1.05 / height, top=1 - (0.3 + 0.25 * title_lines) / height, hspace=0.45, wspace=0.3
    )
    return fig
