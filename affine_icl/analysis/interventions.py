"""QK circuits and causal interventions: QK identity scores (Figure 13), the pseudo-inverse
QK intervention, and mean ablation of heads."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..batches import map_batches
from ..model import Sequences
from ..paper import PAPER
from ..stacked import masked_mse
from .selection import heads_above_or_top


def head_qk(model, layer: int, head: int) -> Float[Tensor, "d_model d_model"]:
    """``W_Q[h] @ W_K[h]^T``, ``[d_model, d_model]``: the bilinear form ``x QK y^T``."""
    attn = model.blocks[layer].attn
    return (attn.W_Q[head] @ attn.W_K[head].T).detach()


def qk_in_vocab_basis(
    model, qk: Float[Tensor, "d_model d_model"]
) -> Float[Tensor, "d_vocab d_vocab"]:
    """A QK bilinear form in the vector (d_vocab) basis: ``W_E @ qk @ W_E^T``: entry ``(i, j)``
    is the attention score of the embedded ``e_i`` (query) on ``e_j`` (key) (Figure 13)."""
    W_E = model.W_E.detach()
    return W_E @ qk @ W_E.T


def identity_score(matrix: Float[Tensor, "n n"]) -> float:
    """Cosine similarity between ``matrix`` and the identity: ``trace(M) / (||M||_F sqrt(n))``.

    1 for a positive multiple of the identity, -1 for a negative one, about 0 for a matrix
    without diagonal structure, and ``sqrt(k/n)`` for a rank-k orthogonal projection (the best a
    ``W_Q W_K^T`` of rank d_head can do: 0.71 for d_head 64 in d_model 128).
    """
    n = matrix.shape[0]
    return float(torch.trace(matrix) / (matrix.norm() * n**0.5))


@torch.no_grad()
def qk_identity_scores(model) -> pd.DataFrame:
    """Identity score of every head's QK, in the d_model basis and through W_E (d_vocab basis)."""
    rows = []
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            qk = head_qk(model, layer, head)
            for basis, m in (
                ("d_model", qk),
                ("embedding (W_E QK W_E^T)", qk_in_vocab_basis(model, qk)),
            ):
                rows.append(
                    {
                        "layer": layer,
                        "head": head,
                        "basis": basis,
                        "identity_score": identity_score(m),
                    }
                )
    return pd.DataFrame(rows)


#: How the pseudo-inverse projection is scaled, for :func:`pinv_qk_intervention`: the paper's
#: "low-rank approximation of the identity" does not say, and a unit projection also changes
#: how sharp the attention is. "unit": the projection itself; "frobenius": scaled to the
#: replaced QK's Frobenius norm; "trace": scaled to its trace.
QK_SCALES = ("unit", "frobenius", "trace")


@torch.no_grad()
def pinv_qk_intervention(
    model, heads: list[tuple[int, int]], generator: torch.Generator, scale: str = "unit"
):
    """A copy of ``model`` whose listed heads have ``W_Q`` random and ``W_K^T = pinv(W_Q)``.

    Then ``W_Q W_K^T`` is the orthogonal projection onto the span of ``W_Q``: the best
    rank-d_head stand-in for the identity, times the replaced QK's Frobenius norm over the
    projection's (``scale="frobenius"``) or its trace over the projection's (``"trace"``).
    Biases are left as they are.
    """
    if scale not in QK_SCALES:
        raise ValueError(f"scale {scale!r}: one of {', '.join(QK_SCALES)}")
    new = copy.deepcopy(model)
    for layer, head in heads:
        attn = new.blocks[layer].attn
        old = head_qk(model, layer, head)
        q = torch.randn(attn.W_Q[head].shape, generator=generator, dtype=attn.W_Q.dtype)
        d_head = q.shape[1]  # the projection's trace, and its squared Frobenius norm
        factor = {
            "unit": 1.0,
            "frobenius": float(old.norm()) / d_head**0.5,
            "trace": float(torch.trace(old)) / d_head,
        }[scale]
        attn.W_Q[head] = q
        attn.W_K[head] = torch.linalg.pinv(q).T * factor
    return new


@torch.no_grad()
def resid_entering(
    model, inputs: Sequences, layer: int, cache: Mapping[str, Tensor] | None = None
) -> Float[Tensor, "batch pos d_model"]:
    """The residual stream entering block ``layer``: ``cache``'s ``blocks.{layer}.hook_resid_pre``
    where an activation cache of ``model`` over ``inputs`` holds it (the same vectors, read
    instead of computed), else the embedding and blocks ``0 .. layer-1`` run once, the same
    operations as the model's forward (so the same bits), in batches (:mod:`..batches`)."""
    name = f"blocks.{layer}.hook_resid_pre"
    if cache is not None and name in cache.keys():
        return cache[name]

    def run(batch: Sequences) -> Tensor:
        resid = model.hook_embed(model.embed(batch)) + model.hook_pos_embed(model.pos_embed(batch))
        for block in model.blocks[:layer]:
            resid = block(resid)
        return resid

    return torch.cat(map_batches(run, inputs))


@torch.no_grad()
def outputs_from(
    model,
    resid: Float[Tensor, "batch pos d_model"],
    layer: int,
    fwd_hooks=(),
    keep: str | None = None,
) -> tuple[Float[Tensor, "batch pos d_vocab"], Tensor | None]:
    """The model's outputs from ``resid`` entering block ``layer`` (:func:`resid_entering`) on,
    with ``fwd_hooks`` on, in batches (:mod:`..batches`; a hook must not mix sequences), and
    the activation of hook ``keep`` over all sequences (None without ``keep``)."""
    kept: dict[int, Tensor] = {}  # by thread: the batches run on several at once

    def keep_hook(act: Tensor, hook) -> None:
        kept[threading.get_ident()] = act

    def run(batch: Tensor) -> tuple[Tensor, Tensor | None]:
        for block in model.blocks[layer:]:
            batch = block(batch)
        return model.unembed(model.ln_final(batch)), kept.pop(threading.get_ident(), None)

    hooks = list(fwd_hooks) + ([(keep, keep_hook)] if keep else [])
    with model.hooks(fwd_hooks=hooks):
        outputs, acts = zip(*map_batches(run, resid), strict=True)
    return torch.cat(outputs), torch.cat(acts) if keep else None


@torch.no_grad()
def outputs_from_z(
    model,
    resid: Float[Tensor, "batch pos d_model"],
    z: Float[Tensor, "batch pos n_heads d_head"],
    layer: int,
) -> Float[Tensor, "batch pos d_vocab"]:
    """The model's outputs from ``resid`` entering block ``layer`` and that block's heads' ``z``
    (``blocks.{layer}.attn.hook_z``, changed or not), in batches (:mod:`..batches`): the
    attention patterns of block ``layer`` are not computed again. With the ``z`` that
    :func:`outputs_from` keeps, its outputs bit for bit."""

    def run(resid: Tensor, z: Tensor) -> Tensor:
        resid = model.blocks[layer].from_z(resid, z)
        for block in model.blocks[layer + 1 :]:
            resid = block(resid)
        return model.unembed(model.ln_final(resid))

    return torch.cat(map_batches(run, resid, z))


def mse_from(
    model,
    resid: Float[Tensor, "batch pos d_model"],
    layer: int,
    targets: Sequences,
    loss_from: int,
    fwd_hooks=(),
) -> float:
    """The masked MSE of the forward pass that continues from ``resid`` entering block ``layer``
    (:func:`outputs_from`), with ``fwd_hooks`` on: an intervention on layer ``layer`` or later
    leaves the blocks before it as they are, so they need not run again for each intervention.
    From ``resid_entering(model, inputs, 0)`` it is the model's own MSE, bit for bit."""
    return float(masked_mse(outputs_from(model, resid, layer, fwd_hooks)[0], targets, loss_from))


@torch.no_grad()
def qk_intervention_table(
    model,
    inputs: Sequences,
    targets: Sequences,
    heads,
    loss_from: int,
    seed: int,
    cache: Mapping[str, Tensor] | None = None,
) -> pd.DataFrame:
    """MSE before and after the pseudo-inverse QK intervention on ``heads`` (all at once), one
    row per scale of :data:`QK_SCALES` ("unit" first: the intervention the claim judges), each
    with the same random ``W_Q`` (drawn from ``seed``). The blocks before the first intervened
    layer run once, or not at all where ``cache`` (:func:`resid_entering`) holds their
    output."""
    first = min((layer for layer, _ in heads), default=model.cfg.n_layers)
    resid = resid_entering(model, inputs, first, cache)
    before = mse_from(model, resid, first, targets, loss_from)
    rows = []
    for scale in QK_SCALES:
        changed = pinv_qk_intervention(model, heads, torch.Generator().manual_seed(seed), scale)
        after = mse_from(changed, resid, first, targets, loss_from)
        rows.append(
            {
                "scale": scale,
                "heads": " ".join(f"L{l}H{h}" for l, h in heads),
                "n_heads": len(heads),
                "mse_before": before,
                "mse_after": after,
                "ratio": after / before,
                "seed": seed,
            }
        )
    return pd.DataFrame(rows)


def qk_intervention_heads(scores: pd.DataFrame, min_z: float) -> tuple[list, str]:
    """The layer-2 heads the QK intervention replaces, and why: those the QK-identity claim
    counts (``qk_identity_d_model_z >= min_z``, z against the shuffled null), else as many of
    the highest as the paper intervened on."""
    return heads_above_or_top(
        scores, 2, "qk_identity_d_model_z", min_z, k=len(PAPER.qk_identity_heads)
    )


@torch.no_grad()
def mean_ablation_table(
    model,
    inputs: Sequences,
    targets: Sequences,
    layer: int,
    loss_from: int,
    cache: Mapping[str, Tensor] | None = None,
) -> pd.DataFrame:
    """MSE with each head of ``layer`` (and then all of them) mean-ablated.

    A head's ``hook_z`` is replaced by its mean over the population at each position (taken on
    the unablated pass), so the head still adds its average ("bias") output but nothing that
    depends on the input. The blocks before ``layer`` run once, or not at all where ``cache``
    (:func:`resid_entering`) holds their output, and ``layer``'s attention patterns once: each
    ablation continues from the unablated pass's ``z`` (:func:`outputs_from_z`).
    """
    resid = resid_entering(model, inputs, layer, cache)
    name = f"blocks.{layer}.attn.hook_z"
    outputs, z = outputs_from(model, resid, layer, keep=name)
    before = float(masked_mse(outputs, targets, loss_from))
    mean = z.mean(0, keepdim=True)  # over the population, per position
    rows = []
    targets_list = [(f"L{layer}H{h}", [h]) for h in range(model.cfg.n_heads)]
    targets_list.append((f"all layer-{layer} heads", list(range(model.cfg.n_heads))))
    for label, heads in targets_list:
        ablated = z.clone()
        ablated[:, :, heads] = mean[:, :, heads]
        after = float(masked_mse(outputs_from_z(model, resid, ablated, layer), targets, loss_from))
        rows.append(
            {
                "layer": layer,
                "ablated": label,
                "mse_before": before,
                "mse_after": after,
                "ratio": after / before,
            }
        )
    return pd.DataFrame(rows)
