"""Reading a run's tables for the claims: heads of a layer, counts against chance, attributions,
OV fits. Each function takes ``t``, the tables by name (:data:`TABLES`), and returns a number or a
:class:`~affine_icl.claims.claim.Measured`; the section modules build their measures from them
(a measure also takes ``s``, the run's :class:`~affine_icl.config.RunAnalysis`).
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from ..config import AnalysisConfig
from .claim import Measure, Measured

#: The tables the claims are measured from, by the name they are read under, and what each is
#: (the claims rule's inputs and :func:`affine_icl.over_training.snapshot_tables` use these names).
TABLES: dict[str, str] = {
    "train_log": "the training log (train_log.parquet)",
    "head_scores": "every head's scores against chance (analysis/head_scores.csv)",
    "head_attribution": "direct attribution of every head (fig07_head_attribution.csv)",
    "ov_regressions": "the layer-0 OV fits per vector (fig08_layer0_ov.csv)",
    "embedding_span": "the layer-0 OV output's share outside span(W_E) (embedding_span.csv)",
    "mean_ablation": "the layer-1 mean ablation (mean_ablation_layer1.csv)",
    "qk_intervention": "the layer-2 QK intervention (qk_intervention.csv)",
    "mlp_attribution": "direct attribution of the MLPs (fig16_mlp_attribution.csv)",
    "residual_after_layer0": "the decoded residual after layer 0 (fig14 summary)",
    "residual_shape": "its correlation with a_n + alpha a_(n-1) (fig17 summary)",
}


def layer_heads(t, layer: int) -> pd.DataFrame:
    """The rows of ``head_scores`` of one layer."""
    scores = t["head_scores"]
    return scores[scores["layer"] == layer]


def count_heads(t, layer: int, column: str, threshold: float, below: bool = False) -> float:
    """Heads of ``layer`` whose ``column`` is at least ``threshold`` (at most, ``below``)."""
    heads = layer_heads(t, layer)
    return float(
        (heads[column] <= threshold).sum() if below else (heads[column] >= threshold).sum()
    )


def heads_beyond_chance(t, layer, score, effect, threshold, below=False) -> Measured:
    """Heads of ``layer`` whose ``effect`` column (a ratio to chance or a z) is at least
    ``threshold`` (at most, ``below``), with the layer's median chance level of ``score`` and
    its heads' median effect."""
    heads = layer_heads(t, layer)
    return Measured(
        count_heads(t, layer, effect, threshold, below),
        float(
            heads[
                f"{score}_chance" if f"{score}_chance" in heads else f"{score}_null_mean"
            ].median()
        ),
        float(heads[effect].median()),
    )


def head_count(
    layer: int, score: str, effect: str, knob: str, unit: str, below: bool = False
) -> dict[str, Any]:
    """The measurement fields of a claim that counts the heads of ``layer`` whose ``effect`` (a
    ratio to the uniform share, ``*_ratio``, or a z against the shuffled null, ``*_z``) reaches
    ``analysis.<knob>`` (or, with ``below``, lies at least that far below); ``knob`` is a field
    of :class:`~affine_icl.config.AnalysisConfig`."""
    if knob not in {f.name for f in fields(AnalysisConfig)}:
        raise ValueError(f"{knob!r} is no analysis setting (AnalysisConfig)")
    ratio = effect.endswith("_ratio")
    return dict(
        measure=lambda t, s: heads_beyond_chance(
            t,
            layer,
            score,
            effect,
            -getattr(s.analysis, knob) if below else getattr(s.analysis, knob),
            below,
        ),
        unit=unit,
        chance_as=(
            "uniform share (median over the layer's heads)"
            if ratio
            else "the score with the head's factors shuffled (median null mean)"
        ),
        effect_as=f"median {'ratio to uniform' if ratio else 'z'} over layer-{layer} heads",
        knob=knob,
        knob_chance=1.0 if ratio else 0.0,
        bounds=(0.0, math.inf),
    )


def absolute_count(layer: int, column: str, threshold: float, below: bool = False) -> Measure:
    """A head count by an absolute score (strictly below ``threshold`` with ``below``): the
    definitions used before heads were counted against chance."""

    def measure(t, s):
        heads = layer_heads(t, layer)[column]
        return float((heads < threshold).sum() if below else (heads >= threshold).sum())

    return measure


def attribution(t, layer: int, from_pos: int) -> pd.Series:
    """Each head's mean attribution to the target from position ``from_pos`` on."""
    a = t["head_attribution"]
    a = a[(a["variant"] == "target") & (a["layer"] == layer) & (a["position"] >= from_pos)]
    return a.groupby("head")["attribution"].mean()


def share(values: pd.Series) -> Measured:
    """A share of heads (e.g. with positive attribution): chance 0.5, a coin flip per head."""
    value = float(values.mean())
    return Measured(value, 0.5, value / 0.5)


def regressions(t, source: str) -> pd.DataFrame:
    """The layer-0 OV fits of ``source`` (residual or random vectors) in the d_model basis."""
    r = t["ov_regressions"]
    if "reading" in r:
        r = r[r["reading"] == "d_model"]
    return r[r["source"] == source]


def r2(t, source: str) -> Measured:
    """Mean per-vector R^2 of the layer-0 OV fit, beside its shuffled-components chance."""
    fits = regressions(t, source)
    chance = float(fits["r2_chance"].iloc[0]) if "r2_chance" in fits else math.nan
    value = float(fits["r2"].mean())
    return Measured(value, chance, value / chance)


def ov_reading(reading: str, what: str) -> Measure:
    """The layer-0 OV fit in another ``reading`` (Figs 8 and 10): the residual vectors' mean
    R^2 (beside the random vectors' as its chance level), median slope, the random vectors'
    R^2, or the gap between the two."""

    def measure(t, s):
        fits = t["ov_regressions"]
        # vectorised: iterating the 138,000-row string column took 0.08 s a call, 32 a judging
        if "reading" not in fits or not fits["reading"].eq(reading).any():
            return math.nan
        fits = fits[fits["reading"] == reading]
        residual, random = fits[fits["source"] == "residual"], fits[fits["source"] == "random"]
        return {
            # the reading's own chance: what random vectors read the same way give (the
            # comparison the paper makes with its 0.598)
            "r2": lambda: Measured(float(residual["r2"].mean()), float(random["r2"].mean())),
            "slope": lambda: float(residual["slope"].median()),
            "random_r2": lambda: float(random["r2"].mean()),
            "gap": lambda: float(residual["r2"].mean() - random["r2"].mean()),
        }[what]()

    return measure


def checkerboard(t, absolute: bool = False) -> Measured:
    """Layer 2's mean checkerboard difference (its absolute value), chance 0, median z."""
    difference = float(layer_heads(t, 2)["checkerboard_difference"].mean())
    z = float(layer_heads(t, 2)["checkerboard_z"].median())
    return Measured(abs(difference) if absolute else difference, 0.0, z)


def mlp_by_position(t, from_pos: int) -> pd.Series:
    """Summed MLP attribution to the target at each position from ``from_pos`` on."""
    mlp = t["mlp_attribution"].query("variant == 'target'")
    return mlp[mlp["position"] >= from_pos].groupby("position")["attribution"].sum()


def correlation_at_alpha(shape: pd.DataFrame, alpha: float) -> float:
    """The ``mean_correlation`` of the row of ``residual_shape.csv`` compared with
    ``a_n + alpha a_(n-1)`` for this ``alpha`` (the correlation depends on alpha alone)."""
    rows = shape[np.isclose(shape["alpha"], alpha)]
    if rows.empty:
        raise ValueError(f"residual_shape: no row compares with alpha {alpha:g}")
    return float(rows["mean_correlation"].iloc[0])
