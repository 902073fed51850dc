"""OV circuits: layer-0 copying (Figures 8-10), share outside W_E's span, effective rank
(Figure 11) and eigenvalue scores (Figure 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import FactoredMatrix

from ..paper import random_direction_share
from .chance import r2_chance


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


#: The readings of the layer-0 OV fit (Figures 8 and 10), in table order; see
#: :func:`layer0_ov_regressions`.
READINGS = ("d_model", "d_model, OV transposed", "d_model, unfolded", "vocab", "attention output")


@torch.no_grad()
def layer0_ov_regressions(
    model,
    cache,
    seed: int,
    inputs: Float[Tensor, "batch pos d_vocab"] | None = None,
    unfolded=None,
) -> pd.DataFrame:
    """Per-vector OV regressions for layer 0, in five readings, on the model's vectors
    (``source="residual"``) and on matched random vectors (``source="random"``).

    Columns: reading, source, vector, slope, intercept, r2, r2_chance (the R^2 a line through
    the same components shuffled has on average, :func:`.chance.r2_chance`). Each row is one least-squares fit
    of ``y_d = slope * x_d + intercept`` over the components d of one vector
    (:func:`per_vector_regression`). ``vector`` is the flat index ``n * L + p`` of sequence n,
    position p, the same (n, p) in every reading. The readings (:func:`reading_vectors` gives
    their x and y):

    - ``"d_model"`` (the rows come first, exactly as before the other readings existed): x the
      residual vector entering layer 0 after its folded LayerNorm (:func:`layer_input`), y
      ``x OV`` with OV the layer's OV summed over heads; d over the d_model components. Random:
      :func:`random_like` of those x (generator seeded with ``seed``) through the same OV.
    - ``"vocab"``: x the input vector ``a_p`` (``inputs``), y ``a_p W_E OV W_U``
      (:func:`ov_in_vocab_basis`); d over the d_vocab components; every position. Random:
      :func:`random_like` of the ``a_p`` (a fresh generator seeded with ``seed``) through the
      same map.
    - ``"attention output"``: x ``a_(p-1)``, y the layer-0 attention output at p (the head
      results summed over heads) read out as the model reads its final residual: centred,
      divided by the final LayerNorm's cached scale at p, times W_U; d over the d_vocab
      components; positions p >= 1 (vector n*L + p; there is no row for p = 0). Random: the
      reading's random vectors ``r`` are the ``"vocab"`` reading's random vectors at p-1 (same
      norms as ``a_(p-1)``), sent along the path ``a_(p-1)`` takes when p attends only to p-1
      and the position embedding is left out: ``r W_E``, layer 0's LayerNorm with the cached
      scale at p-1 (centre, divide), the summed OV, the final LayerNorm with the cached scale
      at p, W_U. The two scales are scalars per vector: they change the slope, not R^2.
    - ``"d_model, OV transposed"``: as "d_model" with ``x OV^T`` (the column-vector convention
      ``OV x`` the paper may have used; the same random vectors).
    - ``"d_model, unfolded"`` (given the ``unfolded`` model, the weights before LayerNorm
      folding): x the output of layer 0's LayerNorm with its learned weight and bias
      (``layer_input * w + b``), y ``x OV`` with the unfolded ``W_V W_O``: the vectors as the
      trained model's own parameters see them. Random: :func:`random_like` of those x.

    No bias enters any reading: not b_O (the head results exclude it), not b_U, not the value
    biases (a folded model has folded them into b_O). A bias adds an input-independent vector
    to y; only a vector constant over the components d is absorbed by the intercept, leaving
    slope and R^2 unchanged. ``b_O W_U`` and ``b_U`` are not constant over d, so including them
    would move the slope and R^2 of each vector; they are left out so that every reading fits
    what the OV does to its input, like the random rows, which have no bias to add.

    ``inputs`` (``[N, L, d_vocab]``, the analysis population's inputs in the cache's sequence
    order) is needed for the "vocab" and "attention output" rows; without it only the d_model
    rows are returned. The "attention output" reading needs ``blocks.0.attn.hook_result``
    (cache family head_result) and ``ln_final.hook_scale`` in the cache.
    """
    ov = layer_ov(model, 0)
    x = layer_input(cache, 0)
    rand = random_like(x, torch.Generator().manual_seed(seed))
    frames = []
    for source, vectors in (("residual", x), ("random", rand)):
        table = per_vector_regression(vectors, vectors @ ov)
        table.insert(0, "source", source)
        frames.append(table)
    if inputs is not None:
        for reading in READINGS[1:]:
            if reading == "d_model, unfolded" and unfolded is None:
                continue
            for source in ("residual", "random"):
                vector, x, y = reading_vectors(
                    model, cache, inputs, seed, reading, source, unfolded
                )
                table = per_vector_regression(x, y)
                table["vector"] = vector
                table.insert(0, "source", source)
                table.insert(0, "reading", reading)
                frames.append(table)
    frames[0].insert(0, "reading", READINGS[0])
    frames[1].insert(0, "reading", READINGS[0])
    table = pd.concat(frames, ignore_index=True)
    components = {reading: model.cfg.d_vocab for reading in READINGS}
    for reading in ("d_model", "d_model, OV transposed", "d_model, unfolded"):
        components[reading] = model.cfg.d_model
    table["r2_chance"] = table["reading"].map(lambda r: r2_chance(components[r]))
    return table


def _check_inputs(model, cache, inputs: Float[Tensor, "batch pos d_vocab"]) -> None:
    """Refuse ``inputs`` that are not the sequences of the cache, in its order: their shape
    must match, and so must their embedding where the cache holds ``hook_embed``."""
    n, length = cache["ln_final.hook_scale"].shape[:2]
    if inputs.ndim != 3 or tuple(inputs.shape[:2]) != (n, length):
        raise ValueError(
            f"inputs {tuple(inputs.shape)} do not match the cache's {n} sequences of {length}"
        )
    if "hook_embed" in cache:
        embed = cache["hook_embed"]
        expected = inputs.to(embed) @ model.W_E.detach().to(embed)
        if not torch.allclose(expected, embed, rtol=1e-3, atol=1e-3 * float(embed.abs().max())):
            raise ValueError(
                "inputs are not the sequences of the activation cache (inputs @ W_E differs "
                "from hook_embed); pass the analysis population's inputs, in the cache's order"
            )


def _centre(x: Float[Tensor, "*vector dim"]) -> Float[Tensor, "*vector dim"]:
    return x - x.mean(-1, keepdim=True)


@torch.no_grad()
def reading_vectors(
    model,
    cache,
    inputs: Float[Tensor, "batch pos d_vocab"] | None,
    seed: int,
    reading: str,
    source: str,
    unfolded=None,
) -> tuple[np.ndarray, Float[Tensor, "vector dim"], Float[Tensor, "vector dim"]]:
    """The fitted pairs of one reading and source of :func:`layer0_ov_regressions`:
    ``(vector, x, y)``, ``vector`` the flat index ``n * L + p`` of each row of x and y.

    ``inputs`` may be None for the "d_model" reading only; the "d_model, unfolded" reading
    needs ``unfolded``, the model before its LayerNorm was folded.
    """
    if reading not in READINGS:
        raise ValueError(f"unknown OV reading {reading!r}; one of {READINGS}")
    if source not in ("residual", "random"):
        raise ValueError(f"unknown source {source!r}; 'residual' or 'random'")
    generator = torch.Generator().manual_seed(seed)
    ov = layer_ov(model, 0)
    if reading in ("d_model", "d_model, OV transposed"):
        x = layer_input(cache, 0)
        if source == "random":
            x = random_like(x, generator)
        return np.arange(len(x)), x, x @ (ov if reading == "d_model" else ov.T)
    if reading == "d_model, unfolded":
        if unfolded is None:
            raise ValueError("the 'd_model, unfolded' reading needs the unfolded model")
        ln = unfolded.blocks[0].ln1
        x = layer_input(cache, 0) * ln.w.detach() + ln.b.detach()
        if source == "random":
            x = random_like(x, generator)
        return np.arange(len(x)), x, x @ layer_ov(unfolded, 0)
    if inputs is None:
        raise ValueError(f"the {reading!r} reading needs the population's inputs")
    _check_inputs(model, cache, inputs)
    inputs = inputs.detach().cpu().float()
    n, length, d_vocab = inputs.shape
    a = inputs.reshape(-1, d_vocab)
    if source == "random":
        a = random_like(a, generator)
    W_E, W_U = model.W_E.detach().cpu(), model.W_U.detach().cpu()
    if reading == "vocab":
        return np.arange(len(a)), a, a @ ov_in_vocab_basis(model, ov)
    # "attention output": query positions p >= 1, each against a_(p-1)
    final_scale = cache["ln_final.hook_scale"][:, 1:]  # [N, L-1, 1]
    x = a.reshape(n, length, d_vocab)[:, :-1]  # a_(p-1) for p = 1..L-1
    if source == "residual":
        out = cache["blocks.0.attn.hook_result"].sum(-2)[:, 1:]  # [N, L-1, d_model], no b_O
    else:
        ln1_scale = cache["blocks.0.ln1.hook_scale"][:, :-1]  # at the key position p-1
        out = (_centre(x @ W_E) / ln1_scale) @ ov
    y = (_centre(out) / final_scale) @ W_U
    vector = (np.arange(n)[:, None] * length + np.arange(1, length)).reshape(-1)
    return vector, x.reshape(-1, d_vocab), y.reshape(-1, d_vocab)


@torch.no_grad()
def ov_scatter_points(
    model,
    cache,
    vector: int,
    seed: int,
    source: str = "residual",
    reading: str = "d_model",
    inputs: Float[Tensor, "batch pos d_vocab"] | None = None,
    unfolded=None,
) -> pd.DataFrame:
    """The (x_d, y_d) points of one vector in one reading of :func:`layer0_ov_regressions`, for
    the scatter plots of Figures 8 and 10 (``ov_x`` holds y: ``(x OV)_d`` in the d_model
    reading). ``vector`` is the table's ``vector`` (flat index n * L + p); ``inputs`` and
    ``unfolded`` as there.
    """
    if reading == "d_model":  # as before the other readings existed
        x = layer_input(cache, 0)
        if source == "random":
            x = random_like(x, torch.Generator().manual_seed(seed))
        x = x[vector]
        y = x @ layer_ov(model, 0)
    else:
        ids, xs, ys = reading_vectors(model, cache, inputs, seed, reading, source, unfolded)
        rows = np.flatnonzero(ids == vector)
        if len(rows) != 1:
            raise ValueError(f"the {reading!r} reading has no vector {vector}")
        x, y = xs[rows[0]], ys[rows[0]]
    return pd.DataFrame(
        {
            "reading": reading,
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
    residual vector: ``||x OV - proj(x OV)|| / ||x OV||``, beside what a random direction
    gives (``chance_share``, ``sqrt(1 - rank/d_model)``, and its standard deviation
    ``chance_share_sd``: :func:`affine_icl.paper.random_direction_share`).
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
    chance, chance_sd = random_direction_share(rank, W_E.shape[1])
    return pd.DataFrame(
        {
            "layer": layer,
            "vector": np.arange(len(share)),
            "share_outside": share.numpy(),
            "embedding_rank": rank,
            "chance_share": chance,
            "chance_share_sd": chance_sd,
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
    """Effective rank and leading singular values of every head's OV matrix, with two
    measures on the squared singular values (the energy): the top direction's share of it
    (``sv1_energy``) and the participation ratio ``(sum s^2)^2 / sum s^4`` (k for k equal
    singular values, like the effective rank, but near 1 when one direction holds most of the
    energy, whatever the tail)."""
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
                    "sv1_energy": float(s[0] ** 2 / (s**2).sum()),
                    "participation_ratio": float((s**2).sum() ** 2 / (s**4).sum()),
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
