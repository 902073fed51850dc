"""Sections 4.7 and 4.8: the residual stream read out as a sequence (Figures 14 and 17), beside
the truth and the paper's a_n + alpha a_(n-1)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .style import suptitle


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
    suptitle(fig, title)
    return fig
