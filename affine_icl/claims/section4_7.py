"""Section 4.7, the MLPs: they push towards a_(n+1) at the final positions."""

from __future__ import annotations

from .claim import Claim, Measured
from .read import mlp_by_position

CLAIMS = (
    Claim(
        "mlp_final_positions",
        "4.7",
        "MLPs contribute in the correct direction at the final positions",
        "positive",
        measure=lambda t, s: Measured(float(mlp_by_position(t, 0).iloc[-3:].mean()), 0.0),
        unit="summed MLP attribution, mean over the last 3 positions",
        chance_as="no push either way",
    ),
)
