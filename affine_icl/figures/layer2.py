"""Section 4.6: layer 2's negative copying and its QK.

Every head's OV eigenvalue score (Figure 15), and the MSE before and after the QK intervention,
with the heads it replaced and whether they were a fallback pick."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .style import mse_points, suptitle, wrap_balanced


def fallback_pick(reason) -> str | None:
    """What a head choice fell back on, if it did: the reason written by
    ``selection.heads_above_or_top`` reads "no layer-L head has SCORE >= T; the k highest
    instead: ..." when no head passed the threshold. None for a regular pick (or no reason)."""
    if not isinstance(reason, str) or not reason.startswith("no ") or " instead" not in reason:
        return None
    return reason.split(";")[0]  # "no layer-2 head has qk_identity_d_model >= 0.3"


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
    suptitle(fig, title)
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
    mse_points(
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
    ax.set_title(f"{title}\n{wrap_balanced(heads, 110)}", fontsize=10)
    fig.tight_layout()
    return fig
