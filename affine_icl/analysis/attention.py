"""Attention patterns (Figures 3-6, 18) and the head scores used to pick heads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from .population import Population, pick_by_sign_of_c


def patterns(cache, layer: int) -> Float[Tensor, "batch n_heads query_pos key_pos"]:
    """``[N, n_heads, query, key]`` attention pattern of ``layer``."""
    return cache[f"blocks.{layer}.attn.hook_pattern"]


def pattern_table(cache, layer: int, samples=None) -> pd.DataFrame:
    """Mean attention pattern over ``samples`` (indices into the cache; all when None).

    Columns: layer, head, query, key, weight, n_sequences.
    """
    pat = patterns(cache, layer)
    if samples is not None:
        pat = pat[torch.as_tensor(np.atleast_1d(samples))]
    mean = pat.mean(0).cpu().numpy()  # [H, Q, K]
    h, q, k = np.meshgrid(*(np.arange(n) for n in mean.shape), indexing="ij")
    return pd.DataFrame(
        {
            "layer": layer,
            "head": h.ravel(),
            "query": q.ravel(),
            "key": k.ravel(),
            "weight": mean.ravel(),
            "n_sequences": pat.shape[0],
        }
    )


def picked_sequence_patterns(
    cache, pop: Population, layer: int, kind: str, threshold: float
) -> pd.DataFrame:
    """``layer``'s patterns on the first ``kind`` sequence ("alternating": c < -threshold,
    "non-alternating": c > threshold), with its ``sample`` id, ``c`` and how it was picked."""
    index = pick_by_sign_of_c(pop, threshold)[kind]
    sign = "c < -" if kind == "alternating" else "c > "
    return pattern_table(cache, layer, samples=[index]).assign(
        sample=int(pop.sample[index]),
        c=float(pop.c[index]),
        picked_by=f"first sequence of the population with {sign}{threshold}",
    )


def attention_views(
    cache, pop: Population, layer: int, threshold: float
) -> dict[str, Float[Tensor, "n_heads query_pos key_pos"]]:
    """``layer``'s patterns to look at interactively, by a short label: on the Figure 5
    sequence (the first with c < -threshold; "Fig 5, #<sample id>, c=<c>"), the Figure 6 one
    (c > threshold), and the mean over ``pop`` ("mean of <N>")."""
    pat = patterns(cache, layer)
    views = {}
    for figure, index in zip((5, 6), pick_by_sign_of_c(pop, threshold).values(), strict=True):
        views[f"Fig {figure}, #{int(pop.sample[index])}, c={float(pop.c[index]):.2f}"] = pat[index]
    views[f"mean of {pat.shape[0]}"] = pat.mean(0)
    return views


def previous_token_scores(cache, n_layers: int) -> pd.DataFrame:
    """Mean attention from each position q >= 1 to q - 1: 1 for a perfect previous-token head."""
    rows = []
    for layer in range(n_layers):
        pat = patterns(cache, layer)
        sub = torch.diagonal(pat, offset=-1, dim1=-2, dim2=-1)  # [N, H, L-1]
        for head, score in enumerate(sub.mean((0, 2)).tolist()):
            rows.append({"layer": layer, "head": head, "score": score})
    return pd.DataFrame(rows)


def offsets_scores(cache, n_layers: int, k: int) -> pd.DataFrame:
    """Mean attention mass that each query ``q >= k`` pays to its ``k`` previous vectors
    ``q - 1 .. q - k``: 1 for a head that reads exactly what a linear recurrence of order ``k``
    needs (``k = 1``: the previous-token score)."""
    rows = []
    for layer in range(n_layers):
        pat = patterns(cache, layer)
        mass = sum(
            torch.diagonal(pat, offset=-j, dim1=-2, dim2=-1)[..., k - j :] for j in range(1, k + 1)
        )
        for head, score in enumerate(mass.mean((0, 2)).tolist()):
            rows.append({"layer": layer, "head": head, "score": score})
    return pd.DataFrame(rows)


def key_position_scores(cache, n_layers: int, key: int) -> pd.DataFrame:
    """Mean attention that the queries after position ``key`` pay to it (a query at ``key``
    itself has only itself and earlier vectors to attend to, so it does not count)."""
    rows = []
    for layer in range(n_layers):
        pat = patterns(cache, layer)[:, :, key + 1 :, key]  # [N, H, L-key-1]
        for head, score in enumerate(pat.mean((0, 2)).tolist()):
            rows.append({"layer": layer, "head": head, "key": key, "score": score})
    return pd.DataFrame(rows)


def same_parity_per_sequence(cache, layer: int) -> Float[Tensor, "batch n_heads"]:
    """Each sequence's attention mass on keys at an even distance from the query, averaged
    over queries q >= 2 (the checkerboard measure before averaging over sequences), in float64:
    its group means differ by about 1e-2 near 0.5, a difference float32 keeps to 4-5 digits,
    which then moved with the activation cache's last bits."""
    pat = patterns(cache, layer).double()  # [N, H, Q, K]
    n = pat.shape[-1]
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    even = ((q - k) % 2 == 0) & (k <= q)
    return (pat * even).sum(-1)[:, :, 2:].mean(-1)


def same_parity_mass(
    cache, layer: int, c: Float[Tensor, " batch"], threshold: float
) -> pd.DataFrame:
    """Checkerboard measure: attention mass on keys whose distance to the query is even.

    Averaged over queries q >= 2 and over alternating (c < -threshold) and non-alternating
    (c > threshold) sequences separately. A uniform pattern gives about 0.5-0.6 here
    (:func:`affine_icl.analysis.chance.uniform_same_parity_share`); a checkerboard gives
    values near 1.
    """
    mass = same_parity_per_sequence(cache, layer)
    rows = []
    for group, mask in (("alternating", c < -threshold), ("non-alternating", c > threshold)):
        for head, value in enumerate(mass[mask].mean(0).tolist()):
            rows.append(
                {
                    "layer": layer,
                    "head": head,
                    "group": group,
                    "same_parity_mass": value,
                    "n_sequences": int(mask.sum()),
                }
            )
    return pd.DataFrame(rows)


def with_uniform_weight(table: pd.DataFrame) -> pd.DataFrame:
    """A pattern table (:func:`pattern_table`) with each cell's chance level beside its weight:
    ``uniform_weight`` = 1/(query+1) on keys up to the query (what a head without preference
    pays each key), 0 on later keys."""
    causal = table["key"] <= table["query"]
    return table.assign(uniform_weight=np.where(causal, 1.0 / (table["query"] + 1), 0.0))


def same_parity_of_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per head of a pattern table with ``uniform_weight``: the attention mass on keys an even
    distance back, and the uniform share of it, averaged over queries >= 2 (as
    :func:`same_parity_per_sequence` does). Columns: mass, chance; index: head."""
    rows = table[(table["query"] >= 2) & ((table["query"] - table["key"]) % 2 == 0)]
    per_query = rows.groupby(["head", "query"])[["weight", "uniform_weight"]].sum()
    out = per_query.groupby("head").mean()
    return out.rename(columns={"weight": "mass", "uniform_weight": "chance"})
