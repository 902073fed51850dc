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
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor


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


def _shuffled(matrix: Tensor, keys: Float[Tensor, "draw entry"]) -> Tensor:
    """``matrix``'s entries in the order that sorts each row of ``keys`` (uniform draws, one
    per entry): ``[draw, *matrix.shape]``, one shuffle per row."""
    return matrix.reshape(-1)[keys.argsort(dim=1)].reshape(len(keys), *matrix.shape)


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
def matrix_score_nulls(model, draws: int, seed: int) -> pd.DataFrame:
    """The shuffled null of every matrix score of every head: one row per (layer, head) with
    the null's mean and standard deviation of ``qk_identity_d_model``,
    ``qk_identity_embedding`` and ``eigenvalue_score``, and the null means of
    ``ov_effective_rank``, ``ov_participation_ratio`` and ``ov_sv1_energy`` (the same scores as
    :mod:`.interventions` and :mod:`.ov` compute, here over ``draws`` shuffles of each head's
    factors). A null is NaN for a head whose shuffles leave the score undefined (0/0: a
    factor with a single non-zero entry shuffles into a zero product).

    The shuffles are drawn from one generator seeded with ``seed``, head after head (``W_Q``,
    ``W_K``, ``W_V``, ``W_O`` of each), so they do not depend on how the work is spread: the
    heads are then scored on ``torch.get_num_threads()`` threads at once (sorting the draws,
    the bulk of the time, uses one core per call), the same numbers as one after another."""
    generator = torch.Generator().manual_seed(seed)
    W_E = model.W_E.detach()
    rows = []
    with ThreadPoolExecutor(max_workers=torch.get_num_threads()) as pool:
        for layer in range(model.cfg.n_layers):  # one layer's draws in memory at a time
            attn = model.blocks[layer].attn
            factors = [
                [w[head].detach() for w in (attn.W_Q, attn.W_K, attn.W_V, attn.W_O)]
                for head in range(model.cfg.n_heads)
            ]
            keys = [
                [torch.rand(draws, w.numel(), generator=generator) for w in head]
                for head in factors
            ]
            scored = pool.map(_head_nulls, factors, keys, [W_E] * len(factors))
            rows += [{"layer": layer, "head": head, **row} for head, row in enumerate(scored)]
    return pd.DataFrame(rows)


def _head_nulls(factors: list[Tensor], keys: list[Tensor], W_E: Tensor) -> dict[str, float]:
    """One head's null means and sds (:func:`matrix_score_nulls`) from its factors
    ``[W_Q, W_K, W_V, W_O]`` and the uniform draws that shuffle each."""
    q, k, v, o = (_shuffled(w, key) for w, key in zip(factors, keys, strict=True))
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
