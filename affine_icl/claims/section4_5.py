"""Section 4.5, layer 1: mean-ablating its heads barely matters, and their OV matrices have low
effective rank."""

from __future__ import annotations

import math

from ..paper import PAPER, sci
from .claim import Alternative, Claim, Measured
from .read import layer_heads


def _per_head_ablation(stat: str):
    def measure(t, s):
        single = t["mean_ablation"].iloc[:-1]["ratio"]
        return float(getattr(single, stat)())

    return measure


CLAIMS = (
    Claim(
        "layer1_mean_ablation",
        "4.5",
        f"mean-ablating layer-1 heads raises the MSE only from {sci(PAPER.final_mse)} "
        f"to {sci(PAPER.mean_ablation_mse)}",
        f"ratio {PAPER.mean_ablation_mse / PAPER.final_mse:g}",
        measure=lambda t, s: Measured(float(t["mean_ablation"].iloc[-1]["ratio"]), 1.0),
        unit="MSE ratio, all layer-1 heads mean-ablated / none",
        chance_as="no change",
        bounds=(0.0, math.inf),
        absence=True,
        alternatives=(
            Alternative("one head at a time: median over heads", _per_head_ablation("median")),
            Alternative("one head at a time: largest", _per_head_ablation("max")),
        ),
        layers=2,
    ),
    Claim(
        "layer1_ov_low_rank",
        "4.5",
        "layer-1 OV matrices have low effective rank",
        "low (a single direction)",
        measure=lambda t, s: Measured(
            float(layer_heads(t, 1)["ov_rank_ratio"].median()),
            1.0,
            float(layer_heads(t, 1)["ov_effective_rank"].median()),
        ),
        unit="median over layer-1 heads of the OV's effective rank / that of its factors shuffled",
        chance_as="the shuffled null (ratio 1)",
        effect_as="median effective rank itself",
        bounds=(0.0, math.inf),
        alternatives=(
            Alternative(
                "participation ratio of s^2 / shuffled null's",
                lambda t, s: float(
                    (
                        layer_heads(t, 1)["ov_participation_ratio"]
                        / layer_heads(t, 1)["ov_participation_ratio_null_mean"]
                    ).median()
                ),
            ),
            Alternative(
                "top direction's share of s^2 (median)",
                lambda t, s: Measured(
                    float(layer_heads(t, 1)["ov_sv1_energy"].median()),
                    float(layer_heads(t, 1)["ov_sv1_energy_null_mean"].median()),
                ),
                criterion={"at_least": 0.5, "differs_down_to": 0.25},
                bounds=(0.0, 1.0),
            ),
        ),
        layers=2,
    ),
)
