"""Figures 1 and 2 and the in-context baselines: the data and how well the model learns it.

Figure 1 draws example sequences of each regime; Figure 2 the training loss and held-out MSE;
the baselines figure (beyond the paper) the model's MSE by position beside its task's
least-squares floor and simple extrapolations."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..paper import PAPER
from .style import legend_below, suptitle


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
    legend_below(ax, ncol=1, fontsize=9)
    fig.subplots_adjust(top=0.84, bottom=0.33)
    suptitle(fig, title)
    return fig
