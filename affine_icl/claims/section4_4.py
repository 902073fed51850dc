"""Section 4.4, the layer-0 OV circuit: a nearly linear map per vector with slope 2.1-2.5,
worse on random vectors, and output largely outside the span of W_E."""

from __future__ import annotations

import math

import pandas as pd

from ..analysis.ov_fits import ov_alpha
from ..paper import PAPER, excess_over_random, random_direction_share
from .claim import Alternative, Claim, Measured
from .read import ov_reading, r2

_SLOPE = f"{PAPER.ov_slope[0]:g}-{PAPER.ov_slope[1]:g}"

#: The other readings of the layer-0 OV fit (Figs 8 and 10) the paper's words allow.
READINGS = {
    "d_model, OV transposed": "x OV^T instead of x OV (d_model basis)",
    "d_model, unfolded": "unfolded weights, LN weight and bias in x (d_model basis)",
    "vocab": "read through W_E and W_U (d_vocab basis)",
    "attention output": "attention output read out like the final residual",
}


def _in_other_readings(what: str) -> tuple[Alternative, ...]:
    return tuple(
        Alternative(label, ov_reading(reading, what)) for reading, label in READINGS.items()
    )


def _outside_share_excess(span: pd.DataFrame) -> Measured:
    """The mean share outside span(W_E) as an excess over a random direction's, in that share's
    standard deviations (chance 0; the share itself as the effect column). The paper's 84.15% is
    +0.35 sd: what chance gives. NaN for a table without the random direction's sd."""
    share = float(span["share_outside"].mean())
    if "chance_share_sd" not in span:
        return Measured(math.nan, 0.0, share)
    chance, sd = float(span["chance_share"].iloc[0]), float(span["chance_share_sd"].iloc[0])
    return Measured((share - chance) / sd, 0.0, share)


CLAIMS = (
    Claim(
        "layer0_ov_r2",
        "4.4",
        "layer-0 OV: (x_d, (OV x)_d) is nearly linear",
        # quoted to two digits, as section 4.4 writes it where it states this claim
        f"R^2 {PAPER.ov_r2_residual:.2f}",
        measure=lambda t, s: r2(t, "residual"),
        unit="mean per-vector R^2 in the d_model basis",
        chance_as="components shuffled: 1/(d_model - 1)",
        effect_as="ratio to chance",
        bounds=(-math.inf, 1.0),
        alternatives=_in_other_readings("r2"),
    ),
    Claim(
        "layer0_ov_slope",
        "4.4",
        f"layer-0 OV slope lies between {PAPER.ov_slope[0]:g} and {PAPER.ov_slope[1]:g}",
        _SLOPE,
        measure=lambda t, s: Measured(ov_alpha(t["ov_regressions"], reading="d_model"), 0.0),
        unit="median per-vector slope",
        chance_as="components shuffled",
        alternatives=_in_other_readings("slope"),
    ),
    Claim(
        "random_ov_r2",
        "4.4",
        "on random vectors the same fit is worse",
        f"R^2 {PAPER.ov_r2_random:g}",
        measure=lambda t, s: r2(t, "random"),
        unit="mean per-vector R^2",
        chance_as="components shuffled: 1/(d_model - 1)",
        effect_as="ratio to chance",
        bounds=(-math.inf, 1.0),
        alternatives=_in_other_readings("random_r2"),
    ),
    Claim(
        "ov_r2_gap",
        "4.4",
        "residual vectors fit better than random vectors",
        f"{PAPER.ov_r2_residual:g} vs {PAPER.ov_r2_random:g} "
        f"(gap {PAPER.ov_r2_residual - PAPER.ov_r2_random:.3f})",
        measure=lambda t, s: Measured(r2(t, "residual").value - r2(t, "random").value, 0.0),
        unit="R^2 gap",
        chance_as="residual and random vectors alike",
        bounds=(-1.0, 1.0),
        alternatives=_in_other_readings("gap"),
    ),
    Claim(
        "outside_embedding_share",
        "4.4",
        f"{PAPER.outside_embedding_share:.2%} of layer-0 OV output lies outside the span of "
        "W_E, more than a random direction would",
        # the paper's share in the units the claim is judged in: its excess over a random
        # direction of its own model (d_vocab 40 in d_model 128: 0.829 +- 0.035)
        f"{PAPER.outside_embedding_share:g}: "
        f"{excess_over_random(PAPER.outside_embedding_share, PAPER.d_vocab, PAPER.d_model):+.2f}"
        f" sd from a random direction's "
        f"{random_direction_share(PAPER.d_vocab, PAPER.d_model)[0]:.3f} (chance)",
        measure=lambda t, s: _outside_share_excess(t["embedding_span"]),
        unit="mean share of layer-0 OV output outside span(W_E), minus a random direction's "
        "(sqrt(1 - rank(W_E)/d_model)), in standard deviations of a random direction's share",
        chance_as="a random direction (excess 0)",
        effect_as="the mean share itself",
    ),
)
