"""Section 4.3 (and 4.7): direct attribution of each head (Figure 7) or each layer's MLP (Figure
16) by position, one heatmap per layer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .style import heatmap, suptitle


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
        heatmap(
            ax,
            sub,
            f"<ln_final(output) W_U, {variant.replace('target', 'a_(m+1)').replace('input', 'a_m')}>",
            "position m",
            "component",
        )
    suptitle(fig, title)
    fig.tight_layout()
    return fig
