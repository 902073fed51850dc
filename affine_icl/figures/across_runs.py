"""Figures across runs: the per-run figures side by side (Figures 7, 8 and 15 for every seed),
the runs of different task families, and a sweep's loss curves and mechanism atlas
(:mod:`affine_icl.atlas`)."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..paper import PAPER
from .claims import RUN_COLOURS, VERDICT_COLOURS
from .style import heatmap, legend_below, suptitle


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
        heatmap(
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
    suptitle(fig, title)
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
    suptitle(fig, "Layer-0 OV fit (Figure 8) in every run")
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
        legend_below(ax)
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
    suptitle(fig, title)
    return fig


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
    suptitle(fig, title)
    title_lines = fig.get_suptitle().count("\n") + 1
    fig.subplots_adjust(
        bottom=1.05 / height, top=1 - (0.3 + 0.25 * title_lines) / height, hspace=0.45, wspace=0.3
    )
    return fig
