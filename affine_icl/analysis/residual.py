"""The residual stream decoded into output space (Figures 14 and 17).

Decoding follows the paper: apply ``ln_final`` to the residual vector (its own statistics,
as a logit lens does) and multiply by ``W_U`` (plus ``b_U``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..model import Sequences
from ..paper import PAPER
from .ov_fits import ov_alpha


@torch.no_grad()
def decode(
    model, resid: Float[Tensor, "*batch pos d_model"]
) -> Float[Tensor, "*batch pos d_vocab"]:
    """``ln_final(resid) @ W_U + b_U`` with LayerNorm statistics recomputed from ``resid``."""
    return model.unembed(model.ln_final(resid))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@torch.no_grad()
def decoded_after_layer0_summary(
    model,
    cache,
    inputs: Sequences,
    targets: Sequences,
    loss_from: int,
) -> pd.DataFrame:
    """How well the residual after layer 0, decoded, already predicts ``a_{n+1}`` (Figure 14).

    Per position: mean cosine similarity with the target for the decoded residual before
    layer 0, after layer 0, and the final output; and the same for the input ``a_n`` as a
    naive baseline. Positions from ``loss_from`` on.
    """
    series = {
        "decoded residual before layer 0": decode(model, cache["blocks.0.hook_resid_pre"]),
        "decoded residual after layer 0": decode(model, cache["blocks.0.hook_resid_post"]),
        "model output": decode(model, cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]),
        "input a_n (baseline)": inputs,
    }
    rows = []
    for name, values in series.items():
        cos = _cosine(values, targets)[:, loss_from:].mean(0)
        for pos, value in enumerate(cos.tolist(), start=loss_from):
            rows.append({"series": name, "position": pos, "cosine_to_target": value})
    return pd.DataFrame(rows)


def crude_label(label: str, alpha: float) -> str:
    return f"a_n + {alpha:.2f} a_(n-1) ({label})"


@torch.no_grad()
def sequence_series(
    model,
    cache,
    inputs: Sequences,
    targets: Sequences,
    sample: int,
    dims,
    alphas: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One sequence's values along chosen dimensions, for Figures 14 and 17.

    Series per position n (output index n predicts a_{n+1}): the input a_n, the decoded
    residual before and after layer 0, the truth a_{n+1}, and ``a_n + alpha a_{n-1}`` (n >= 1)
    for each ``{label: alpha}`` in ``alphas`` (series named by :func:`crude_label`).
    """
    x, t = inputs[sample], targets[sample]
    shifted = torch.cat([torch.full_like(x[:1], float("nan")), x[:-1]])
    series = {
        "input a_n": x,
        "decoded residual before layer 0": decode(model, cache["blocks.0.hook_resid_pre"][sample]),
        "decoded residual after layer 0": decode(model, cache["blocks.0.hook_resid_post"][sample]),
        "true a_(n+1)": t,
        **{
            crude_label(label, alpha): x + alpha * shifted
            for label, alpha in (alphas or {}).items()
        },
    }
    rows = []
    for name, values in series.items():
        v = values.cpu().numpy()
        for d in dims:
            for n in range(v.shape[0]):
                rows.append(
                    {"sample": sample, "series": name, "dim": d, "n": n, "value": float(v[n, d])}
                )
    return pd.DataFrame(rows)


@torch.no_grad()
def shape_correlations(
    model,
    cache,
    inputs: Sequences,
    targets: Sequences,
    alphas: dict[str, float],
) -> pd.DataFrame:
    """Population-level check of section 4.8: correlation over positions, per sequence and dim,
    between the decoded residual after layer 0 and ``a_n + alpha a_(n-1)`` for each alpha (the
    first row is the first alpha given), then the truth ``a_(n+1)``."""
    after = decode(model, cache["blocks.0.hook_resid_post"])[:, 1:]
    truth = targets[:, 1:]

    def corr(a, b):
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        return float(np.nanmean(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).numpy()))

    rows = [
        {
            "compared_with": crude_label(label, alpha),
            "alpha": alpha,
            "mean_correlation": corr(after, inputs[:, 1:] + alpha * inputs[:, :-1]),
        }
        for label, alpha in alphas.items()
    ]
    rows.append(
        {"compared_with": "true a_(n+1)", "alpha": np.nan, "mean_correlation": corr(after, truth)}
    )
    return pd.DataFrame(rows)


def shape_alphas(regressions: pd.DataFrame) -> dict[str, float]:
    """The alphas Figure 17 and the layer-0 shape claim compare the residual with: the median
    layer-0 OV slope measured in Figure 8 (``regressions``) and the paper's."""
    return {"measured in Figure 8": ov_alpha(regressions), "the paper's": PAPER.alpha}
