"""OV circuits: layer-0 copying (Figures 8-10), share outside W_E's span, effective rank
(Figure 11) and eigenvalue scores (Figure 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix


def head_ov(model, layer: int, head: int) -> Float[Tensor, "d_model d_model"]:
    """``W_V[h] @ W_O[h]``, ``[d_model, d_model]`` (row-vector convention: ``x @ OV``)."""
    attn = model.blocks[layer].attn
    return (attn.W_V[head] @ attn.W_O[head]).detach()


def layer_ov(model, layer: int) -> Float[Tensor, "d_model d_model"]:
    """The OV circuit of a layer: the sum of its heads' OV matrices."""
    attn = model.blocks[layer].attn
    return torch.einsum("hmd,hdn->mn", attn.W_V, attn.W_O).detach()


def layer_input(cache, layer: int) -> Float[Tensor, "vector d_model"]:
    """Residual vectors entering ``layer`` after its folded LayerNorm, flattened ``[N*L, d_model]``.

    Recomputed from ``hook_resid_pre`` and the cached ``ln1.hook_scale``, exactly what the
    parameter-free LayerNorm of a folded model does.
    """
    x = cache[f"blocks.{layer}.hook_resid_pre"]
    x = (x - x.mean(-1, keepdim=True)) / cache[f"blocks.{layer}.ln1.hook_scale"]
    return x.reshape(-1, x.shape[-1])


def per_vector_regression(
    x: Float[Tensor, "vector dim"], y: Float[Tensor, "vector dim"]
) -> pd.DataFrame:
    """For each row, least-squares fit of ``y_d = slope * x_d + intercept`` over components d.

    Returns one row per vector: vector, slope, intercept, r2.
    """
    x, y = x.double(), y.double()
    xc = x - x.mean(1, keepdim=True)
    yc = y - y.mean(1, keepdim=True)
    slope = (xc * yc).sum(1) / (xc * xc).sum(1)
    intercept = y.mean(1) - slope * x.mean(1)
    residual = yc - slope[:, None] * xc
    r2 = 1 - (residual**2).sum(1) / (yc * yc).sum(1)
    return pd.DataFrame(
        {
            "vector": np.arange(len(x)),
            "slope": slope.numpy(),
            "intercept": intercept.numpy(),
            "r2": r2.numpy(),
        }
    )


def random_like(
    x: Float[Tensor, "vector d_model"], generator: torch.Generator
) -> Float[Tensor, "vector d_model"]:
    """Gaussian directions with the same count and the same norms as the rows of ``x``."""
    r = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return r / r.norm(dim=1, keepdim=True) * x.norm(dim=1, keepdim=True)


@torch.no_grad()
def layer0_ov_regressions(model, cache, seed: int) -> pd.DataFrame:
    """Per-vector OV regressions for layer 0 on residual vectors and on matched random vectors.

    Columns: source ("residual" / "random"), vector, slope, intercept, r2.
    """
    ov = layer_ov(model, 0)
    x = layer_input(cache, 0)
    rand = random_like(x, torch.Generator().manual_seed(seed))
    frames = []
    for source, vectors in (("residual", x), ("random", rand)):
        table = per_vector_regression(vectors, vectors @ ov)
        table.insert(0, "source", source)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


@torch.no_grad()
def ov_scatter_points(
    model, cache, vector: int, seed: int, source: str = "residual"
) -> pd.DataFrame:
    """The (x_d, (x OV)_d) points of one vector, for the scatter plots of Figures 8 and 10."""
    x = layer_input(cache, 0)
    if source == "random":
        x = random_like(x, torch.Generator().manual_seed(seed))
    x = x[vector]
    y = x @ layer_ov(model, 0)
    return pd.DataFrame(
        {
            "source": source,
            "vector": vector,
            "d": np.arange(len(x)),
            "x": x.numpy(),
            "ov_x": y.numpy(),
        }
    )


def matrix_table(matrix: Float[Tensor, "row col"], name: str) -> pd.DataFrame:
    """A matrix in long form: row, col, value (for heatmaps and their tables)."""
    m = matrix.detach().cpu().numpy()
    r, c = np.meshgrid(np.arange(m.shape[0]), np.arange(m.shape[1]), indexing="ij")
    return pd.DataFrame({"matrix": name, "row": r.ravel(), "col": c.ravel(), "value": m.ravel()})


def ov_in_vocab_basis(
    model, ov: Float[Tensor, "d_model d_model"]
) -> Float[Tensor, "d_vocab d_vocab"]:
    """An OV map in the vector (d_vocab) basis: ``W_E @ ov @ W_U``, ``[d_vocab, d_vocab]``.

    Row ``i`` is what the OV writes, read through the unembedding, for the embedded unit
    vector ``e_i`` (Figures 9 and 12).
    """
    return model.W_E.detach() @ ov @ model.W_U.detach()


@torch.no_grad()
def outside_embedding_share(model, cache, layer: int = 0) -> pd.DataFrame:
    """Share of ``x OV`` outside the row space of ``W_E`` (paper: 84.15% for layer 0).

    ``W_E = U S V^T``; the first rank(W_E) rows of ``V^T`` span the embedding space. For each
    residual vector: ``||x OV - proj(x OV)|| / ||x OV||``. Also reports the share for
    matched random vectors of the same norms in the table's ``source`` column.
    """
    W_E = model.W_E.detach().double()
    _, s, vh = torch.linalg.svd(W_E, full_matrices=False)
    rank = int((s > s.max() * 1e-6).sum())
    basis = vh[:rank]  # [rank, d_model], orthonormal rows
    ov = layer_ov(model, layer).double()
    x = layer_input(cache, layer).double()
    out = x @ ov
    inside = out @ basis.T @ basis
    share = (out - inside).norm(dim=1) / out.norm(dim=1)
    return pd.DataFrame(
        {
            "layer": layer,
            "vector": np.arange(len(share)),
            "share_outside": share.numpy(),
            "embedding_rank": rank,
            "chance_share": (1 - rank / W_E.shape[1]) ** 0.5,
        }
    )


def effective_rank(matrix: Float[Tensor, "row col"]) -> tuple[float, np.ndarray]:
    """Effective rank (Roy & Vetterli 2007): ``exp(entropy(s / sum(s)))`` of the singular values.

    Equals k for a matrix with k equal non-zero singular values. Returns (rank, singular values).
    """
    s = torch.linalg.svdvals(matrix.double())
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum())), s.numpy()


@torch.no_grad()
def ov_rank_table(model) -> pd.DataFrame:
    """Effective rank and leading singular values of every head's OV matrix."""
    rows = []
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            rank, s = effective_rank(head_ov(model, layer, head))
            rows.append(
                {
                    "layer": layer,
                    "head": head,
                    "effective_rank": rank,
                    "top_singular_values": " ".join(f"{v:.4g}" for v in s[:8]),
                    "sv1_share": float(s[0] / s.sum()),
                }
            )
    return pd.DataFrame(rows)


@torch.no_grad()
def eigenvalue_scores(model) -> pd.DataFrame:
    """``sum(l) / sum(|l|)`` over the eigenvalues of each head's OV (Figure 15).

    +1 for a copying head, -1 for a negative copying head (Elhage et al. 2021).
    """
    rows = []
    for layer in range(model.cfg.n_layers):
        attn = model.blocks[layer].attn
        for head in range(model.cfg.n_heads):
            eig = FactoredMatrix(attn.W_V[head], attn.W_O[head]).eigenvalues
            score = (eig.sum() / eig.abs().sum()).real.item()
            rows.append({"layer": layer, "head": head, "eigenvalue_score": score})
    return pd.DataFrame(rows)
