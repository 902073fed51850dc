"""Section 4.2: attention patterns (Figures 3-6, and 18's single pattern), one heatmap per head."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from .style import draw_heatmap, suptitle


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
        draw_heatmap(
            sub, ax, check_overlap=False, vmin=0, vmax=1, cmap="viridis", cbar=False, square=True
        )
        # upright position labels in every panel (seaborn would turn crowded ones sideways)
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
    suptitle(fig, title)
    return fig
