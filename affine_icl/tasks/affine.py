"""The paper's family: ``a_n = c a_(n-1) + d``, one scalar ``c`` shared by every component."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from ..families import FAMILIES
from .base import Task, uniform


class Affine(Task):
    """Section 3.1's recurrence. Its numbers are drawn in the order and shapes the sampler always
    drew them (initial term, ``d``, then ``c`` of shape ``[*shape]``) and never drawn again, so
    its data are unchanged bit for bit; ``c < 0`` makes the whole sequence alternate in sign,
    the paper's checkerboard (section 4.2)."""

    family = FAMILIES["affine"]
    recurrence = "a_n = c a_(n-1) + d"
    predicted_claims = ("layer2_checkerboard",)
    alternates = True
    redraw_beyond = None

    @property
    def n_coefs(self) -> int:
        return 1

    def draw_coefs(
        self, shape: tuple[int, ...], generator: torch.Generator, c: Tensor | None = None
    ) -> Float[Tensor, "... 1"]:
        """``c`` ~ U(``c_range``) per sequence, or the given ``c`` (``[*shape]``, Figure 1)."""
        if c is None:
            c = uniform(shape, self.cfg.c_range, generator, generator.device)
        return c.to(device=generator.device, dtype=torch.get_default_dtype())[..., None]

    def next_term(
        self,
        history: Float[Tensor, "... k dim"],
        coefs: Float[Tensor, "... 1"],
        d: Float[Tensor, "... dim"],
    ) -> Float[Tensor, "... dim"]:
        return coefs[..., 0, None] * history[..., -1, :] + d
