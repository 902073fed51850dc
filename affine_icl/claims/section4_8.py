"""Section 4.8, conjectures: layer 0 approximately computes a_n + alpha a_(n-1)."""

from __future__ import annotations

from ..paper import PAPER
from .claim import Claim, Measured
from .read import correlation_at_alpha

CLAIMS = (
    Claim(
        "layer0_shape",
        "4.8",
        "layer 0 approximately computes a_n + alpha a_(n-1)",
        f"alpha {PAPER.ov_slope[0]:g}-{PAPER.ov_slope[1]:g}",
        measure=lambda t, s: Measured(correlation_at_alpha(t["residual_shape"], PAPER.alpha), 0.0),
        unit="correlation over positions of the decoded residual after layer 0 with "
        f"a_n + {PAPER.alpha:g} a_(n-1) (the paper's alpha)",
        chance_as="unrelated series",
        bounds=(-1.0, 1.0),
    ),
)
