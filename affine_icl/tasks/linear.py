"""The linear recurrence of order ``k`` (``data.order``): ``a_n = c_1 a_(n-1) + ... + c_k
a_(n-k) + d``, from ``k`` random initial terms."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from ..families import FAMILIES
from .base import Task


class Linear(Task):
    """Each term reads the ``k`` before it, with ``k`` scalar coefficients shared by every
    component; the future work predicts layer-0 heads that attend to those ``k`` terms."""

    family = FAMILIES["linear"]
    recurrence = "a_n = c_1 a_(n-1) + ... + c_k a_(n-k) + d"
    predicted_claims = ("linear_offset_heads",)

    @property
    def n_coefs(self) -> int:
        return self.cfg.order

    def next_term(
        self,
        history: Float[Tensor, "... k dim"],
        coefs: Float[Tensor, "... k"],
        d: Float[Tensor, "... dim"],
    ) -> Float[Tensor, "... dim"]:
        lags = history[..., -self.cfg.order :, :].flip(-2)  # a_(n-1), ..., a_(n-k)
        return (coefs[..., :, None] * lags).sum(-2) + d

    def features(self, terms: Float[Tensor, "... t dim"], n: int) -> Float[Tensor, "... dim k"]:
        """``a_(n-1) .. a_(n-k)`` for every component."""
        return terms[..., n - self.cfg.order : n, :].flip(-2).transpose(-1, -2)
