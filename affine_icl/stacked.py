"""K independent copies of the model as stacked weights: the training path's arithmetic.

Training does not run the hooked :class:`~affine_icl.model.VectorTransformer`: it runs the same
network as one functional forward over weights with a leading model dimension ``K``, so that
K seeds train in one process with one batched matmul per layer (``K = 1`` for a single run).
The layout is chosen for speed, not for analysis: Q, K and V projections are one
``[d_model, 3 * n_heads * d_head]`` matrix, attention is one fused
``scaled_dot_product_attention`` call, LayerNorm is ``F.layer_norm`` and every bias is folded
into a ``baddbmm``. The maths is the hooked model's; ``tests/test_stacked.py`` checks the
outputs agree and :func:`stack_state_dicts` / :func:`unstack_state_dict` convert weights (and,
since AdamW is elementwise, optimizer moments) between the two layouts exactly.

Sequences of different lengths share a batch by padding: the network is causal, so positions
before a sequence's length never see the padding, and :func:`masked_losses` counts only the
positions ``loss_from .. length - 1`` of each model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from .config import ModelConfig


def _layer_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Per-layer parameters of the training layout, with their shapes (no K dimension)."""
    m, hd, f = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.d_mlp
    return {
        "ln1.w": (m,),
        "ln1.b": (m,),
        "attn.W_QKV": (m, 3 * hd),
        "attn.b_QKV": (3 * hd,),
        "attn.W_O": (hd, m),
        "attn.b_O": (m,),
        "ln2.w": (m,),
        "ln2.b": (m,),
        "mlp.W_in": (m, f),
        "mlp.b_in": (f,),
        "mlp.W_out": (f, m),
        "mlp.b_out": (m,),
    }


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Name → shape of every training-layout parameter of one model (no K dimension)."""
    shapes = {"embed.W_E": (cfg.d_vocab, cfg.d_model), "pos_embed.W_pos": (cfg.n_ctx, cfg.d_model)}
    for layer in range(cfg.n_layers):
        shapes.update({f"blocks.{layer}.{k}": v for k, v in _layer_shapes(cfg).items()})
    shapes.update(
        {
            "ln_final.w": (cfg.d_model,),
            "ln_final.b": (cfg.d_model,),
            "unembed.W_U": (cfg.d_model, cfg.d_vocab),
            "unembed.b_U": (cfg.d_vocab,),
        }
    )
    return shapes


# --------------------------------------------------------------------------- layout conversion


def _to_train_layout(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """One model's TransformerLens-named tensors → the training layout (no K dimension)."""
    if cfg.normalization_type != "LN":
        raise ValueError("the training layout needs an unfolded model (normalization_type='LN')")
    out = {}
    for name in param_shapes(cfg):
        prefix, _, leaf = name.rpartition(".")
        if leaf == "W_QKV":
            out[name] = torch.cat(
                [state[f"{prefix}.W_{x}"].permute(1, 0, 2).reshape(cfg.d_model, -1) for x in "QKV"],
                dim=1,
            )
        elif leaf == "b_QKV":
            out[name] = torch.cat([state[f"{prefix}.b_{x}"].reshape(-1) for x in "QKV"])
        elif leaf == "W_O":
            out[name] = state[name].reshape(-1, cfg.d_model)
        else:
            out[name] = state[name]
    return out


def _from_train_layout(
    params: dict[str, torch.Tensor], cfg: ModelConfig
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`_to_train_layout`."""
    h, d, m = cfg.n_heads, cfg.d_head, cfg.d_model
    out = {}
    for name, value in params.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf == "W_QKV":
            for x, part in zip("QKV", value.split(h * d, dim=1), strict=True):
                out[f"{prefix}.W_{x}"] = part.reshape(m, h, d).permute(1, 0, 2)
        elif leaf == "b_QKV":
            for x, part in zip("QKV", value.split(h * d), strict=True):
                out[f"{prefix}.b_{x}"] = part.reshape(h, d)
        elif leaf == "W_O":
            out[name] = value.reshape(h, d, m)
        else:
            out[name] = value
    return out


def stack_state_dicts(
    states: list[dict[str, torch.Tensor]], cfg: ModelConfig
) -> dict[str, torch.Tensor]:
    """K TransformerLens-named state dicts (weights or AdamW moments) → stacked training layout."""
    converted = [_to_train_layout(s, cfg) for s in states]
    return {k: torch.stack([c[k] for c in converted]).contiguous() for k in converted[0]}


def unstack_state_dict(
    params: dict[str, torch.Tensor], index: int, cfg: ModelConfig
) -> dict[str, torch.Tensor]:
    """Model ``index`` of a stacked training layout → a TransformerLens-named state dict."""
    one = {k: v[index].detach() for k, v in params.items()}
    return {k: v.contiguous().clone() for k, v in _from_train_layout(one, cfg).items()}


# --------------------------------------------------------------------------- forward and loss


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm of ``x [K, N, M]`` with per-model weight and bias ``[K, M]``.

    One model (``K = 1``) takes ``F.layer_norm``'s own weight and bias: one kernel forward and
    one backward, where normalising and then scaling and shifting per model (``K > 1``: the
    weights differ per model, which ``F.layer_norm`` cannot take) costs seven ops a step more
    per LayerNorm. The two agree to float rounding (``tests/test_stacked.py``).
    """
    m = x.shape[-1]
    if x.shape[0] == 1:  # view, not w[0]: a view's backward launches nothing
        return F.layer_norm(x, (m,), w.view(m), b.view(m), eps)
    return torch.addcmul(b[:, None], F.layer_norm(x, (m,), eps=eps), w[:, None])


def forward(
    params: dict[str, Tensor], inputs: Float[Tensor, "k batch pos d_vocab"], cfg: ModelConfig
) -> Float[Tensor, "k batch pos d_vocab"]:
    """Outputs ``[K, B, P, d_vocab]`` of K stacked models on inputs ``[K, B, P, d_vocab]``."""
    k, b, p, _ = inputs.shape
    if p > cfg.n_ctx:
        raise ValueError(f"sequence of {p} positions exceeds the context window n_ctx={cfg.n_ctx}")
    h, d, m, eps = cfg.n_heads, cfg.d_head, cfg.d_model, cfg.eps
    x = torch.bmm(inputs.reshape(k, b * p, -1), params["embed.W_E"])
    resid = (x.view(k, b, p, m) + params["pos_embed.W_pos"][:, None, :p]).view(k, b * p, m)
    for layer in range(cfg.n_layers):
        prefix = f"blocks.{layer}."
        w = {n.removeprefix(prefix): t for n, t in params.items() if n.startswith(prefix)}
        x = _layer_norm(resid, w["ln1.w"], w["ln1.b"], eps)
        qkv = torch.baddbmm(w["attn.b_QKV"][:, None], x, w["attn.W_QKV"])
        q, key, v = qkv.view(k * b, p, 3, h, d).permute(2, 0, 3, 1, 4)  # each [KB, H, P, d]
        z = F.scaled_dot_product_attention(q, key, v, is_causal=True)
        z = z.transpose(1, 2).reshape(k, b * p, h * d)
        resid = resid + torch.baddbmm(w["attn.b_O"][:, None], z, w["attn.W_O"])
        x = _layer_norm(resid, w["ln2.w"], w["ln2.b"], eps)
        x = torch.baddbmm(w["mlp.b_in"][:, None], x, w["mlp.W_in"])
        act = F.relu(x) if cfg.act_fn == "relu" else F.gelu(x)
        resid = resid + torch.baddbmm(w["mlp.b_out"][:, None], act, w["mlp.W_out"])
    x = _layer_norm(resid, params["ln_final.w"], params["ln_final.b"], eps)
    out = torch.baddbmm(params["unembed.b_U"][:, None], x, params["unembed.W_U"])
    return out.view(k, b, p, -1)


def position_mask(
    lengths: Int[Tensor, " k"], positions: int, loss_from: int
) -> Float[Tensor, "k pos"]:
    """``[K, positions]`` float mask: 1 at output positions ``loss_from .. lengths[k] - 1``."""
    pos = torch.arange(positions, device=lengths.device)
    return ((pos >= loss_from) & (pos < lengths[:, None])).to(torch.float32)


def masked_losses(
    outputs: Float[Tensor, "k batch pos d_vocab"],
    targets: Float[Tensor, "k batch pos d_vocab"],
    lengths: Int[Tensor, " k"],
    loss_from: int,
) -> Float[Tensor, " k"]:
    """Per-model MSE ``[K]`` over positions ``loss_from .. length - 1`` (padding excluded).

    Equal to ``F.mse_loss(out[:, loss_from:L], target[:, loss_from:L])`` for each model.
    """
    _, b, p, dim = outputs.shape
    per_position = (outputs - targets).square().sum(dim=(1, 3))  # [K, P]
    mask = position_mask(lengths, p, loss_from)
    return (per_position * mask).sum(dim=1) / (b * dim * (lengths - loss_from))


def masked_mse(
    pred: Float[Tensor, "batch pos d_vocab"],
    targets: Float[Tensor, "batch pos d_vocab"],
    loss_from: int,
) -> Float[Tensor, ""]:
    """MSE over output positions ``loss_from..`` of one model's ``[B, P, D]`` outputs."""
    lengths = torch.tensor([pred.shape[1]], device=pred.device)
    return masked_losses(pred[None], targets[None], lengths, loss_from)[0]
