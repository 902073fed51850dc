"""What chance gives for each head-level and matrix-level score, computed, never hand-set.

A score means little without the value it takes when the head has no preference, so every
score of :func:`affine_icl.analysis.heads.head_scores_table` gets one of two references:

- **Attention shares** (previous-token, key-1, same-parity mass) against the *uniform share*:
  a causal head with no preference gives query ``q`` the weight ``1/(q+1)`` on each of its
  ``q+1`` keys, so the chance value of a share averaged over queries is the same average of
  ``1/(q+1)`` (or of the fraction of same-parity keys). The effect size is the ratio to it:
  1 for a uniform head, 3 for a head that pays a key three times the uniform share.
- **Matrix scores** (QK identity score, OV eigenvalue score, OV effective rank) against a
  *shuffled null*: the same score of the head's own factors with their entries shuffled
  (``W_Q`` and ``W_K`` independently; ``W_V`` and ``W_O`` independently), which keeps the
  entries' sizes and the rank and destroys any alignment between the factors. The effect
  size is ``z = (score - null mean) / null sd`` (or, for the effective rank, the ratio to
  the null mean).
- **The checkerboard** (same-parity mass on alternating minus non-alternating sequences):
  a label-permutation null, which shuffles which sequences count as alternating.

Per-vector R^2 of a least-squares line over ``n`` components has the permutation null
``E[R^2] = 1/(n - 1)`` (:func:`r2_chance`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from ..batches import analysis_threads, map_on_threads


def uniform_key_share(n_pos: int, key_offset: int | None = None, key: int | None = None) -> float:
    """The uniform share of one key, averaged over the queries a key score averages over.

    ``key_offset=1``: the previous-token score (queries ``q >= 1``, key ``q - 1``);
    ``key=k``: a fixed key position (queries ``q > k``). Either way the mean of ``1/(q+1)``.
    """
    if (key_offset is None) == (key is None):
        raise ValueError("give exactly one of key_offset and key")
    first = key_offset if key is None else key + 1
    queries = np.arange(first, n_pos)
    if queries.size == 0:
        raise ValueError(f"no query position at or after {first} in {n_pos} positions")
    return float(np.mean(1.0 / (queries + 1)))


def uniform_offsets_share(n_pos: int, k: int) -> float:
    """The uniform share of the ``k`` previous keys, averaged over the queries ``q >= k``:
    the mean of ``k / (q + 1)``."""
    queries = np.arange(k, n_pos)
    if queries.size == 0:
        raise ValueError(f"no query position at or after {k} in {n_pos} positions")
    return float(np.mean(k / (queries + 1)))


def uniform_same_parity_share(n_pos: int, first_query: int = 2) -> float:
    """The uniform same-parity mass: the mean over queries ``q >= first_query`` of the share of
    keys ``k <= q`` with ``q - k`` even, ``(q // 2 + 1) / (q + 1)``."""
    queries = np.arange(first_query, n_pos)
    return float(np.mean((queries // 2 + 1) / (queries + 1)))


def r2_chance(n_components: int) -> float:
    """Mean R^2 of a per-vector line fit (slope and intercept) over ``n_components`` points when
    the components of x are shuffled against y: ``1 / (n - 1)`` (the squared Pearson
    correlation of a random permutation has that mean)."""
    if n_components < 3:
        raise ValueError(f"an R^2 over {n_components} points has no chance level")
    return 1.0 / (n_components - 1)


def label_permutation_null(
    values: Float[Tensor, "sequence head"],
    group_a: Tensor,
    group_b: Tensor,
    draws: int,
    generator: torch.Generator,
) -> Float[Tensor, "draw head"]:
    """Null of ``mean(values[a]) - mean(values[b])`` per head: the sequences of both groups
    pooled and relabelled at random (group sizes kept), ``draws`` times."""
    pooled = values[group_a | group_b]
    n_a = int(group_a.sum())
    out = torch.empty(draws, values.shape[1], dtype=torch.float64)
    for i in range(draws):
        order = torch.randperm(len(pooled), generator=generator)
        out[i] = (pooled[order[:n_a]].mean(0) - pooled[order[n_a:]].mean(0)).double()
    return out


def _shuffled(matrix: Tensor, order: Int[Tensor, "draw entry"]) -> Tensor:
    """``matrix``'s entries in each row's ``order`` (a permutation of its entries): ``[draw,
    *matrix.shape]``, one shuffle per row."""
    return matrix.reshape(-1)[order].reshape(len(order), *matrix.shape)


def _identity_scores(m: Float[Tensor, "draw n n"]) -> Tensor:
    n = m.shape[-1]
    return torch.diagonal(m, dim1=-2, dim2=-1).sum(-1) / (m.flatten(1).norm(dim=1) * n**0.5)


def _eigenvalue_scores(v: Tensor, o: Tensor) -> Tensor:
    eig = torch.linalg.eigvals((o @ v).double())  # the non-zero eigenvalues of v @ o
    return eig.sum(-1).real / eig.abs().sum(-1)


def _rank_measures(m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Effective rank (entropy of s / sum s), participation ratio of s^2 and the top singular
    value's share of s^2, per matrix."""
    s = torch.linalg.svdvals(m.double())
    p = s / s.sum(-1, keepdim=True)
    entropy = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)
    energy = s**2
    total = energy.sum(-1)
    return torch.exp(entropy), total**2 / (energy**2).sum(-1), energy[..., 0] / total


def _mean_sd(null: Tensor) -> tuple[float, float]:
    """Mean and sd of the defined draws: a shuffle can leave a score undefined (0/0, e.g. a
    sparse factor shuffled into a zero product); NaN when fewer than two draws are defined."""
    values = null.double().numpy()
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1))


@torch.no_grad()
def matrix_score_nulls(
    models: Sequence, draws: int, seed: int, progress: bool = False
) -> list[pd.DataFrame]:
    """The shuffled null of every matrix score of every head, for each model of ``models``
    (models of one shape, such as one run's weights snapshots): one frame per model, one row
    per (layer, head) with the null's mean and standard deviation of
    ``qk_identity_d_model``, ``qk_identity_embedding`` and ``eigenvalue_score``, and the null
    means of ``ov_effective_rank``, ``ov_participation_ratio`` and ``ov_sv1_energy`` (the same
    scores as :mod:`.interventions` and :mod:`.ov` compute, here over ``draws`` shuffles of each
    head's factors). A null is NaN for a head whose shuffles leave the score undefined (0/0: a
    factor with a single non-zero entry shuffles into a zero product).

    The shuffles are drawn from one generator seeded with ``seed``, head after head (``W_Q``,
    ``W_K``, ``W_V``, ``W_O`` of each), so they depend on the seed and the shapes only: each
    model's frame is the one it gets alone, and each shuffle is sorted out of its uniform
    draws once for all the models (the sort is half the work of one model). The sorts, then
    the (model, head) pairs, run on :func:`~affine_icl.batches.analysis_threads` threads at
    once (the first of each alone: :func:`~affine_icl.batches.map_on_threads`), the same
    numbers as one after another. ``progress``: a bar over the heads scored."""
    if not models:
        return []
    shapes = {_factor_shapes(model) for model in models}
    if len(shapes) > 1:
        raise ValueError(
            f"matrix_score_nulls: the models have {len(shapes)} different shapes; their shuffles "
            "are shared, so give models of one shape (or one model at a time)"
        )
    n_layers, n_heads = models[0].cfg.n_layers, models[0].cfg.n_heads
    generator = torch.Generator().manual_seed(seed)
    W_E = [model.W_E.detach() for model in models]
    rows: list[list[dict]] = [[] for _ in models]
    bar = tqdm(total=n_layers * n_heads * len(models), desc="shuffled nulls", disable=not progress)
    n_threads = analysis_threads()
    for layer in range(n_layers):  # one layer's shuffles in memory at a time
        factors = [_head_factors(model, layer) for model in models]  # [model][head][4]
        keys = [
            torch.rand(draws, w.numel(), generator=generator) for head in factors[0] for w in head
        ]
        orders = map_on_threads(_sort_order, keys, n_threads)
        del keys

        def score(task: tuple[int, int], factors=factors, orders=orders) -> dict[str, float]:
            m, head = task
            row = _head_nulls(factors[m][head], orders[4 * head : 4 * head + 4], W_E[m])
            bar.update()
            return row

        tasks = [(m, head) for m in range(len(models)) for head in range(n_heads)]
        for (m, head), row in zip(tasks, map_on_threads(score, tasks, n_threads), strict=True):
            rows[m].append({"layer": layer, "head": head, **row})
    bar.close()
    return [pd.DataFrame(r) for r in rows]


def _factor_shapes(model) -> tuple[int, ...]:
    """What the shuffles of :func:`matrix_score_nulls` depend on besides the seed: the shapes."""
    cfg = model.cfg
    return (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_vocab)


def _head_factors(model, layer: int) -> list[list[Tensor]]:
    """``[W_Q, W_K, W_V, W_O]`` of each head of ``layer``."""
    attn = model.blocks[layer].attn
    return [
        [w[head].detach() for w in (attn.W_Q, attn.W_K, attn.W_V, attn.W_O)]
        for head in range(model.cfg.n_heads)
    ]


def _sort_order(keys: Float[Tensor, "draw entry"]) -> Int[Tensor, "draw entry"]:
    """The permutation that sorts each row of uniform draws: a uniform shuffle (torch's sort;
    int32, half the memory)."""
    return keys.argsort(dim=1).to(torch.int32)


def _head_nulls(factors: list[Tensor], orders: list[Tensor], W_E: Tensor) -> dict[str, float]:
    """One head's null means and sds (:func:`matrix_score_nulls`) from its factors
    ``[W_Q, W_K, W_V, W_O]`` and the shuffles of each."""
    q, k, v, o = (_shuffled(w, order) for w, order in zip(factors, orders, strict=True))
    qk = q @ k.transpose(1, 2)
    nulls = {
        "qk_identity_d_model": _identity_scores(qk),
        "qk_identity_embedding": _identity_scores(W_E @ qk @ W_E.T),
        "eigenvalue_score": _eigenvalue_scores(v, o),
    }
    row = {}
    for name, null in nulls.items():
        row[f"{name}_null_mean"], row[f"{name}_null_sd"] = _mean_sd(null)
    rank, participation, top = _rank_measures(v @ o)
    row["ov_effective_rank_null_mean"] = _mean_sd(rank)[0]
    row["ov_participation_ratio_null_mean"] = _mean_sd(participation)[0]
    row["ov_sv1_energy_null_mean"] = _mean_sd(top)[0]
    return row
