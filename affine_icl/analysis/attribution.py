"""Direct attribution (Figures 7 and 16): <ln_final(component) W_U, direction>.

A component's output at position m is scaled by the cached final LayerNorm scale
(TransformerLens ``apply_ln_to_stack``), projected through ``W_U`` and dotted with the
target ``a_{m+1}`` ("target") or with ``a_{m+1} - a_m`` ("target - input"). After folding,
the attributions of all components plus the bias terms add up exactly to
``<output, direction>``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..model import Sequences

VARIANTS = ("target", "target - input")


def directions(inputs: Sequences, targets: Sequences) -> dict[str, Sequences]:
    return {"target": targets, "target - input": targets - inputs}


def project(
    stack: Float[Tensor, "component batch pos d_model"],
    W_U: Float[Tensor, "d_model d_vocab"],
    direction: Sequences,
) -> Float[Tensor, "component batch pos"]:
    """``[C, N, L, d_model]`` LN-applied components → ``[C, N, L]`` attributions."""
    return torch.einsum("cnlm,mv,nlv->cnl", stack, W_U, direction)


def component_stack(model, cache) -> tuple[Float[Tensor, "component batch pos d_model"], list[str]]:
    """Every additive piece of the final residual stream, LN-applied: ``[C, N, L, d_model]``.

    Pieces: embed, pos_embed, each head (``L{l}H{h}``), each layer's ``b_O`` (``L{l} b_O``)
    and each MLP (``L{l} MLP``). They sum to the final residual stream.
    """
    pieces = [cache["hook_embed"], cache["hook_pos_embed"]]
    labels = ["embed", "pos_embed"]
    for layer in range(model.cfg.n_layers):
        result = cache[f"blocks.{layer}.attn.hook_result"]  # [N, L, H, d_model]
        pieces.extend(result.unbind(dim=2))
        labels.extend(f"L{layer}H{h}" for h in range(model.cfg.n_heads))
        pieces.append(model.blocks[layer].attn.b_O.expand_as(pieces[0]))
        labels.append(f"L{layer} b_O")
        pieces.append(cache[f"blocks.{layer}.hook_mlp_out"])
        labels.append(f"L{layer} MLP")
    stack = torch.stack(pieces)
    return cache.apply_ln_to_stack(stack, layer=model.cfg.n_layers), labels


def _table(values: torch.Tensor, labels, variant: str) -> pd.DataFrame:
    mean = values.mean(1).detach().cpu().numpy()  # [C, L]
    comp, pos = np.meshgrid(np.arange(mean.shape[0]), np.arange(mean.shape[1]), indexing="ij")
    return pd.DataFrame(
        {
            "component": np.asarray(labels)[comp.ravel()],
            "position": pos.ravel(),
            "variant": variant,
            "attribution": mean.ravel(),
        }
    )


@torch.no_grad()
def head_attribution_table(
    model,
    cache,
    inputs: Sequences,
    targets: Sequences,
) -> pd.DataFrame:
    """Mean direct attribution per head and position, both variants (Figure 7).

    Columns: layer, head, component, position, variant, attribution.
    """
    stack, labels = cache.stack_head_results(
        layer=model.cfg.n_layers, return_labels=True, apply_ln=True
    )
    frames = [
        _table(project(stack, model.W_U, d), labels, name)
        for name, d in directions(inputs, targets).items()
    ]
    table = pd.concat(frames, ignore_index=True)
    parts = table["component"].str.extract(r"L(\d+)H(\d+)").astype(int)
    table.insert(0, "layer", parts[0])
    table.insert(1, "head", parts[1])
    return table


@torch.no_grad()
def mlp_attribution_table(
    model,
    cache,
    inputs: Sequences,
    targets: Sequences,
) -> pd.DataFrame:
    """Mean direct attribution of each layer's MLP per position, both variants (Figure 16)."""
    stack = torch.stack([cache[f"blocks.{l}.hook_mlp_out"] for l in range(model.cfg.n_layers)])
    stack = cache.apply_ln_to_stack(stack, layer=model.cfg.n_layers)
    labels = [f"L{l} MLP" for l in range(model.cfg.n_layers)]
    frames = [
        _table(project(stack, model.W_U, d), labels, name)
        for name, d in directions(inputs, targets).items()
    ]
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "layer", table["component"].str.extract(r"L(\d+)")[0].astype(int))
    return table
