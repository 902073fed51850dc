"""Head choices by measured score, never by index: a retrained model numbers heads differently.

Each function returns the chosen head(s) and a one-line reason that the rule writes into its
table, so a reader sees which head a figure shows and why.
"""

from __future__ import annotations

import pandas as pd


def _fmt(row, score: str) -> str:
    return f"L{int(row['layer'])}H{int(row['head'])} ({score} {row[score]:.3f})"


def top_head(scores: pd.DataFrame, layer: int, score: str, largest: bool = True):
    """The head of ``layer`` with the largest (or smallest) ``score``: ((layer, head), reason)."""
    sub = scores[scores["layer"] == layer].sort_values(score, ascending=not largest)
    row = sub.iloc[0]
    word = "highest" if largest else "lowest"
    return (layer, int(row["head"])), f"{word} {score} in layer {layer}: {_fmt(row, score)}"


def heads_above(scores: pd.DataFrame, layer: int, score: str, threshold: float):
    """All heads of ``layer`` with ``score >= threshold``: (list of (layer, head), reason)."""
    sub = scores[(scores["layer"] == layer) & (scores[score] >= threshold)]
    heads = [(layer, int(h)) for h in sub["head"]]
    listed = ", ".join(_fmt(r, score) for _, r in sub.iterrows()) or "none"
    return heads, f"layer-{layer} heads with {score} >= {threshold}: {listed}"


def heads_above_or_top(scores: pd.DataFrame, layer: int, score: str, threshold: float, k: int):
    """Heads of ``layer`` with ``score >= threshold``; if there are none, the ``k`` with the
    highest score, and the reason says so plainly (a model without that layer: no heads)."""
    heads, reason = heads_above(scores, layer, score, threshold)
    if heads:
        return heads, reason
    sub = scores[scores["layer"] == layer].sort_values(score, ascending=False).head(k)
    if sub.empty:
        layers = sorted(int(x) for x in scores["layer"].unique())
        have = ", ".join(f"layer {x}" for x in layers) or "no scored heads"
        return [], f"the model has no layer {layer} ({have}): no head picked"
    listed = ", ".join(_fmt(r, score) for _, r in sub.iterrows())
    return (
        [(layer, int(h)) for h in sub["head"]],
        f"no layer-{layer} head has {score} >= {threshold}; the {len(sub)} highest instead"
        + (f" (all the layer has, {k} asked for)" if len(sub) < k else "")
        + f": {listed}",
    )
