"""The diagonal recurrence: ``a_n = diag(c) a_(n-1) + d``, one coefficient per component.

A full ``D x D`` matrix ``a_n = C a_(n-1) + d`` is not a family here: it has ``D^2 + D``
unknowns, so the ``<= 14`` terms of a sequence (``D`` equations each) cannot identify it for
``D = 40``; the diagonal family is the higher-dimensional case that a few terms do identify.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from ..families import FAMILIES
from .base import Task


class Diagonal(Task):
    """``D`` independent affine recurrences, one per component: no sequence alternates as a
    whole, so the future work predicts no layer-2 checkerboard."""

    family = FAMILIES["diagonal"]
    recurrence = "a_n = diag(c) a_(n-1) + d"
    predicted_claims = ("diagonal_no_checkerboard",)

    @property
    def n_coefs(self) -> int:
        return self.cfg.vector_dim

    def next_term(
        self,
        history: Float[Tensor, "... k dim"],
        coefs: Float[Tensor, "... dim"],
        d: Float[Tensor, "... dim"],
    ) -> Float[Tensor, "... dim"]:
        return coefs * history[..., -1, :] + d

    def solve(
        self,
        x: Float[Tensor, "batch n dim 1"],
        y: Float[Tensor, "batch n dim"],
        xc: Float[Tensor, "batch n dim 1"],
        yc: Float[Tensor, "batch n dim"],
    ) -> tuple[Float[Tensor, "batch dim"], Float[Tensor, "batch dim"]]:
        """One least-squares problem per component (``[B, D, N, 1]``): its own ``c_i``."""
        sol = torch.linalg.lstsq(xc.movedim(-2, -3), yc.movedim(-1, -2)[..., None], driver="gelsd")
        coefs = sol.solution[..., 0, 0]  # [B, D]
        return coefs, y.mean(-2) - coefs * x[..., 0].mean(-2)
