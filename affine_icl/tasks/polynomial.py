"""The polynomial recurrence of degree ``p`` (``data.degree``), elementwise: ``a_n = c_p
a_(n-1)^p + ... + c_1 a_(n-1) + d``.

A polynomial orbit that leaves a bounded region grows doubly exponentially, so its last term
would dwarf the inputs it is normalised by: every sequence with a raw term outside
``[-POLYNOMIAL_BOUND, POLYNOMIAL_BOUND]`` is drawn again (with the bound the last term's norm is
at most 3x the largest input norm; the affine task's is 2x).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from ..families import FAMILIES
from .base import Task

#: Raw terms beyond this magnitude make a polynomial sequence be drawn again.
POLYNOMIAL_BOUND = 100.0


class Polynomial(Task):
    """``p`` scalar coefficients shared by every component, of the powers ``1 .. p`` of the
    previous term; the future work predicts that the MLPs, the only elementwise nonlinearity,
    supply the powers."""

    family = FAMILIES["polynomial"]
    recurrence = "a_n = c_p a_(n-1)^p + ... + c_1 a_(n-1) + d"
    predicted_claims = ("polynomial_mlp_positions",)
    redraw_beyond = POLYNOMIAL_BOUND

    @property
    def n_coefs(self) -> int:
        return self.cfg.degree

    def _powers(self, prev: Tensor) -> list[Tensor]:
        """``a_(n-1)^1 .. a_(n-1)^p``."""
        return [prev**j for j in range(1, self.cfg.degree + 1)]

    def next_term(
        self,
        history: Float[Tensor, "... k dim"],
        coefs: Float[Tensor, "... p"],
        d: Float[Tensor, "... dim"],
    ) -> Float[Tensor, "... dim"]:
        powers = torch.stack(self._powers(history[..., -1, :]), dim=-2)  # [..., p, D]
        return (coefs[..., :, None] * powers).sum(-2) + d

    def features(self, terms: Float[Tensor, "... t dim"], n: int) -> Float[Tensor, "... dim p"]:
        return torch.stack(self._powers(terms[..., n - 1, :]), dim=-1)

    def normalised_coefs(self, coefs: Tensor, scale: Tensor) -> Tensor:
        """Division by ``s`` turns ``c_j`` into ``c_j s^(j-1)``."""
        powers = torch.arange(self.cfg.degree, dtype=coefs.dtype, device=coefs.device)  # j - 1
        return coefs * scale[..., None] ** powers
