"""How each verdict depends on its definition: every claim judged again with its threshold
made looser and stricter, and under the other definitions the paper's words allow.

A claim's threshold is the ``analysis`` parameter that decides which heads count (its
``knob``: a ratio to the uniform share, a z against a shuffled null) or, for a claim without
one, the bound of its criterion. A *strictness factor* ``f`` scales the threshold's distance
from chance: ``chance + f * (threshold - chance)``, so ``f = 1`` is the configured definition,
``f < 1`` asks less of the model and ``f > 1`` more, and no factor turns a threshold into one
that chance passes. A ``within`` criterion keeps its centre and divides its half-widths by
``f``. Thresholds are clipped to the values the measurement can take (a share cannot exceed 1).

The alternatives (:data:`ALTERNATIVES`) are the readings the paper leaves open, each judged
by its claim's criterion unless it brings its own. A verdict is *fragile* when some cell of
its claim's rows (any factor, any definition) gives another verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from .claims import (
    NOT_MEASURABLE,
    Claim,
    Measure,
    Measured,
    judged_claims,
    model_layers,
    run_task,
    verdict,
)

#: The configured definition's row label.
AS_CONFIGURED = "as configured"


@dataclass(frozen=True)
class Alternative:
    """Another definition of a claim: a label, its measure (which may give its own chance
    level, :class:`~affine_icl.claims.Measured`), and its own criterion and bounds where the
    claim's do not fit (a different quantity)."""

    label: str
    measure: Measure
    criterion: Mapping[str, Any] | None = None
    bounds: tuple[float, float] | None = None


def _layer(t, layer):
    scores = t["head_scores"]
    return scores[scores["layer"] == layer]


def _absolute_count(layer, column, threshold, below=False) -> Measure:
    def measure(t, p):
        heads = _layer(t, layer)[column]
        return float((heads < threshold).sum() if below else (heads >= threshold).sum())

    return measure


def _per_head_ablation(stat: str) -> Measure:
    def measure(t, p):
        single = t["mean_ablation"].iloc[:-1]["ratio"]
        return float(getattr(single, stat)())

    return measure


def _qk_scaled(scale: str) -> Measure:
    def measure(t, p):
        table = t["qk_intervention"]
        rows = table[table["scale"] == scale] if "scale" in table else table.iloc[:0]
        return float(rows["ratio"].iloc[0]) if len(rows) and rows["n_heads"].iloc[0] else math.nan

    return measure


def _ov_reading(reading: str, what: str) -> Measure:
    def measure(t, p):
        fits = t["ov_regressions"]
        if "reading" not in fits or reading not in set(fits["reading"]):
            return math.nan
        fits = fits[fits["reading"] == reading]
        residual, random = fits[fits["source"] == "residual"], fits[fits["source"] == "random"]
        return {
            "r2": lambda: float(residual["r2"].mean()),
            "slope": lambda: float(residual["slope"].median()),
            "random_r2": lambda: float(random["r2"].mean()),
            "gap": lambda: float(residual["r2"].mean() - random["r2"].mean()),
        }[what]()

    return measure


_READINGS = {
    "d_model, OV transposed": "x OV^T instead of x OV (d_model basis)",
    "d_model, unfolded": "unfolded weights, LN weight and bias in x (d_model basis)",
    "vocab": "read through W_E and W_U (d_vocab basis)",
    "attention output": "attention output read out like the final residual",
}
_OV_CLAIMS = {"layer0_ov_r2": "r2", "layer0_ov_slope": "slope", "random_ov_r2": "random_r2"}
_OV_CLAIMS["ov_r2_gap"] = "gap"

#: The definitions the paper's words also allow, per claim id.
ALTERNATIVES: dict[str, tuple[Alternative, ...]] = {
    "layer0_previous_token_heads": (
        Alternative(
            "absolute share >= 0.5 (former)", _absolute_count(0, "previous_token_score", 0.5)
        ),
    ),
    "layer1_second_vector_heads": (
        Alternative("absolute share >= 0.5 (former)", _absolute_count(1, "key1_score", 0.5)),
    ),
    "layer2_qk_identity": (
        Alternative(
            "cosine with I >= 0.3 (former)", _absolute_count(2, "qk_identity_d_model", 0.3)
        ),
    ),
    "layer2_negative_copying": (
        Alternative(
            "eigenvalue score < 0 (former)",
            _absolute_count(2, "eigenvalue_score", 0.0, below=True),
        ),
    ),
    "layer1_mean_ablation": (
        Alternative("one head at a time: median over heads", _per_head_ablation("median")),
        Alternative("one head at a time: largest", _per_head_ablation("max")),
    ),
    "qk_intervention": (
        Alternative("projection scaled to the QK's Frobenius norm", _qk_scaled("frobenius")),
        Alternative("projection scaled to the QK's trace", _qk_scaled("trace")),
    ),
    "layer1_ov_low_rank": (
        Alternative(
            "participation ratio of s^2 / shuffled null's",
            lambda t, p: float(
                (
                    _layer(t, 1)["ov_participation_ratio"]
                    / _layer(t, 1)["ov_participation_ratio_null_mean"]
                ).median()
            ),
        ),
        Alternative(
            "top direction's share of s^2 (median)",
            lambda t, p: Measured(
                float(_layer(t, 1)["ov_sv1_energy"].median()),
                float(_layer(t, 1)["ov_sv1_energy_null_mean"].median()),
            ),
            criterion={"at_least": 0.5, "differs_down_to": 0.25},
            bounds=(0.0, 1.0),
        ),
    ),
    **{
        claim: tuple(
            Alternative(label, _ov_reading(reading, what)) for reading, label in _READINGS.items()
        )
        for claim, what in _OV_CLAIMS.items()
    },
}


def _clip(x: float, bounds: tuple[float, float]) -> float:
    return min(max(x, bounds[0]), bounds[1])


def scaled_criterion(
    criterion: Mapping[str, Any], factor: float, chance: float, bounds: tuple[float, float]
) -> dict[str, Any]:
    """``criterion`` with its bounds' distance from ``chance`` times ``factor`` (a ``within``
    interval's half-widths divided by it), clipped to ``bounds``; NaN chance counts as 0."""
    c = 0.0 if chance is None or math.isnan(chance) else chance

    def move(x):
        return _clip(c + factor * (x - c), bounds)

    if "within" in criterion:
        out = {}
        for key in ("within", "differs_within"):
            if key in criterion:
                lo, hi = criterion[key]
                mid, half = (lo + hi) / 2, (hi - lo) / 2 / factor
                out[key] = [mid - half, mid + half]
        return out
    return {key: move(value) for key, value in criterion.items()}


def main_bound(criterion: Mapping[str, Any]) -> float:
    """The bound that decides 'reproduced': at_least, at_most, or the interval's lower end."""
    for key in ("at_least", "at_most"):
        if key in criterion:
            return float(criterion[key])
    return float(criterion["within"][0])


@dataclass
class _Row:
    claim: Claim
    definition: str
    measure: Measure
    criterion: Mapping[str, Any]
    chance: float | None = None
    bounds: tuple[float, float] = field(default=(-math.inf, math.inf))


def sensitivity_table(
    tables: Mapping[str, pd.DataFrame],
    criteria: Mapping[str, Mapping],
    params: Mapping[str, Any],
    factors: Sequence[float],
) -> pd.DataFrame:
    """One row per (claim, definition, factor): what was varied, the threshold, the measured
    value and the verdict. The configured definition first, then :data:`ALTERNATIVES`."""
    if 1.0 not in factors:
        raise ValueError(f"the strictness factors {list(factors)} must include 1 (as configured)")
    n_heads = int(tables["head_scores"].groupby("layer").size().max())
    out = []
    for claim in judged_claims(run_task(params), model_layers(tables)):
        configured = claim.measured(tables, params)
        if claim.knob:  # a count of heads: 0 at chance, at most a layer's heads
            configured = Measured(configured.value, 0.0)
            claim = replace(claim, bounds=(0.0, float(n_heads)))
        rows = [
            _Row(
                claim,
                AS_CONFIGURED,
                claim.measure,
                criteria[claim.id],
                configured.chance,
                claim.bounds,
            )
        ]
        for alt in ALTERNATIVES.get(claim.id, ()):
            measured = alt.measure(tables, params)
            own = measured.chance if isinstance(measured, Measured) else math.nan
            rows.append(
                _Row(
                    claim,
                    alt.label,
                    alt.measure,
                    alt.criterion or criteria[claim.id],
                    own if not math.isnan(own) else configured.chance,
                    alt.bounds or claim.bounds,
                )
            )
        for row in rows:
            out.extend(_sweep(row, tables, params, factors))
    return pd.DataFrame(out)


def _value(measure: Measure, tables, params) -> float:
    value = measure(tables, params)
    return value.value if isinstance(value, Measured) else float(value)


def _sweep(row: _Row, tables, params, factors) -> list[dict[str, Any]]:
    claim = row.claim
    knob = claim.knob if row.definition == AS_CONFIGURED else None
    fixed = None if knob else _value(row.measure, tables, params)
    out = []
    for factor in factors:
        if knob:
            threshold = claim.knob_chance + factor * (params[knob] - claim.knob_chance)
            value = _value(row.measure, tables, {**params, knob: threshold})
            criterion, varied = row.criterion, f"analysis.{knob}"
        else:
            criterion = scaled_criterion(row.criterion, factor, row.chance, row.bounds)
            value, threshold, varied = fixed, main_bound(criterion), "criterion bound"
        out.append(
            {
                "claim_id": claim.id,
                "definition": row.definition,
                "factor": factor,
                "varied": varied,
                "threshold": threshold,
                "measured": value,
                "verdict": verdict(value, criterion),
            }
        )
    return out


def robustness(sensitivity: pd.DataFrame) -> dict[str, str]:
    """Per claim: "robust", or "fragile: ..." naming where the verdict differs from the
    configured definition's at factor 1 (not-measurable cells do not count)."""
    out = {}
    for claim_id, rows in sensitivity.groupby("claim_id", sort=False):
        configured = rows[(rows["definition"] == AS_CONFIGURED) & (rows["factor"] == 1.0)]
        headline = configured["verdict"].iloc[0]
        flips = rows[(rows["verdict"] != headline) & (rows["verdict"] != NOT_MEASURABLE)]
        if flips.empty or headline == NOT_MEASURABLE:
            out[claim_id] = "robust" if headline != NOT_MEASURABLE else "-"
            continue
        where = []
        for definition, cells in flips.groupby("definition", sort=False):
            factors = ", ".join(f"x{f:g}" for f in cells["factor"])
            where.append(f"{definition} at {factors}")
        out[claim_id] = "fragile: " + "; ".join(where)
    return out
