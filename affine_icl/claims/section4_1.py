"""Section 4.1, the trained model: its final MSE."""

from __future__ import annotations

import math

from ..paper import PAPER, sci
from .claim import Claim

CLAIMS = (
    Claim(
        "final_mse",
        "4.1",
        f"the trained model reaches an MSE of {PAPER.final_mse:g}",
        sci(PAPER.final_mse),
        measure=lambda t, s: float(t["train_log"]["heldout_mse"].dropna().iloc[-1]),
        chance_as="none: an absolute target",
        bounds=(0.0, math.inf),
    ),
)
