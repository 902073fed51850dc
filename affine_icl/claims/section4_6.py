"""Section 4.6, layer 2: negative copying heads whose QK circuits resemble the identity (a
pseudo-inverse projection in their place leaves the MSE as it is), reading an estimate that the
residual after layer 0 already holds."""

from __future__ import annotations

import math

from ..paper import PAPER, sci
from .claim import Alternative, Claim, Measured
from .read import absolute_count, head_count

_QK_HEADS = PAPER.qk_identity_heads


def _qk_intervention(t, s) -> Measured:
    table = t["qk_intervention"]
    if "scale" in table:
        table = table[table["scale"] == "unit"]
    row = table.iloc[0]
    return Measured(float(row["ratio"]) if row["n_heads"] > 0 else math.nan, 1.0)


def _qk_scaled(scale: str):
    def measure(t, s):
        table = t["qk_intervention"]
        rows = table[table["scale"] == scale] if "scale" in table else table.iloc[:0]
        return float(rows["ratio"].iloc[0]) if len(rows) and rows["n_heads"].iloc[0] else math.nan

    return measure


CLAIMS = (
    Claim(
        "layer2_negative_copying",
        "4.6",
        "every layer-2 head is a negative copying head",
        f"{PAPER.n_heads} of {PAPER.n_heads} heads",
        **head_count(
            2,
            "eigenvalue_score",
            "eigenvalue_score_z",
            "negative_copying_min_z",
            "layer-2 heads whose OV eigenvalue score is >= analysis.negative_copying_min_z sd "
            "below its shuffled null",
            below=True,
        ),
        alternatives=(
            Alternative(
                "eigenvalue score < 0 (former)",
                absolute_count(2, "eigenvalue_score", 0.0, below=True),
            ),
        ),
        layers=3,
    ),
    Claim(
        "layer2_qk_identity",
        "4.6",
        "layer-2 QK circuits resemble the identity",
        f"heads {_QK_HEADS[0]}-{_QK_HEADS[-1]} ({len(_QK_HEADS)} of {PAPER.n_heads})",
        **head_count(
            2,
            "qk_identity_d_model",
            "qk_identity_d_model_z",
            "qk_identity_min_z",
            "layer-2 heads whose QK identity score is >= analysis.qk_identity_min_z sd above "
            "its shuffled null",
        ),
        alternatives=(
            Alternative(
                "cosine with I >= 0.3 (former)", absolute_count(2, "qk_identity_d_model", 0.3)
            ),
        ),
        layers=3,
    ),
    Claim(
        "qk_intervention",
        "4.6",
        "replacing QK by a pseudo-inverse projection leaves the MSE at "
        f"{sci(PAPER.qk_intervention_mse)}",
        f"ratio {PAPER.qk_intervention_mse / PAPER.final_mse:g}",
        measure=_qk_intervention,
        unit="MSE ratio after / before; heads and why in qk_intervention.csv (picked_by)",
        chance_as="no change",
        bounds=(0.0, math.inf),
        absence=True,
        alternatives=(
            Alternative("projection scaled to the QK's Frobenius norm", _qk_scaled("frobenius")),
            Alternative("projection scaled to the QK's trace", _qk_scaled("trace")),
        ),
        layers=3,
    ),
    Claim(
        "layer0_estimate",
        "4.6",
        "the residual after layer 0, decoded, already approximates a_(n+1)",
        "a reasonable estimate",
        measure=lambda t, s: Measured(
            float(
                t["residual_after_layer0"]
                .query("series == 'decoded residual after layer 0'")["cosine_to_target"]
                .mean()
            ),
            0.0,
        ),
        unit="mean cosine similarity with a_(n+1)",
        chance_as="a random direction",
        bounds=(-1.0, 1.0),
    ),
)
