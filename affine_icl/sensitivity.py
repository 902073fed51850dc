"""How each verdict depends on its definition: its margin, every claim judged again with its
threshold made looser and stricter, and under the other definitions the paper's words allow.

A claim's threshold is the ``analysis`` parameter that decides which heads count (its
``knob``: a ratio to the uniform share, a z against a shuffled null) or, for a claim without
one, the bounds of its criterion. A *strictness factor* ``f`` makes it ask more of the model
(``f > 1``) or less (``f < 1``); :mod:`affine_icl.margins` says how, and finds each verdict's
margin: the range of factors over which it stays what it is (:func:`margins_table`). The grid
(:func:`sensitivity_table`) judges every claim at the configured factors, to be drawn.

The alternatives (:data:`ALTERNATIVES`) are the readings the paper leaves open, each judged
by its claim's criterion unless it brings its own; :func:`other_readings` judges them at
``f = 1`` and :func:`better_readings` picks, per claim, the reading that gets closer to the
paper's result than the configured (literal) one, so the claims table can show both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from .claims import (
    VERDICT_RANK,
    Claim,
    Measure,
    Measured,
    chance_as_good,
    judged_claims,
    model_layers,
    run_task,
    verdict,
)
from .margins import NO_MARGIN, Margin, margin, strict_criterion

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
    """The layer-0 OV fit in another ``reading`` (Figs 8 and 10): the residual vectors' mean
    R^2 (beside the random vectors' as its chance level), median slope, the random vectors'
    R^2, or the gap between the two."""

    def measure(t, p):
        fits = t["ov_regressions"]
        if "reading" not in fits or reading not in set(fits["reading"]):
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


def _definitions(
    claim: Claim, tables, criteria: Mapping[str, Mapping], params, n_heads: int
) -> list[_Row]:
    """The configured definition of ``claim`` and its :data:`ALTERNATIVES`, each with the
    criterion, chance level and bounds it is judged by (an alternative without its own chance
    level takes the claim's; a head count has chance 0 and at most ``n_heads``)."""
    configured = claim.measured(tables, params)
    if claim.knob:  # a count of heads: 0 at chance, at most a layer's heads
        configured = Measured(configured.value, 0.0)
        claim = replace(claim, bounds=(0.0, float(n_heads)))
    rows = [
        _Row(
            claim, AS_CONFIGURED, claim.measure, criteria[claim.id], configured.chance, claim.bounds
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
    return rows


def _judged(tables, params):
    return judged_claims(run_task(params), model_layers(tables))


def _heads_per_layer(tables) -> int:
    return int(tables["head_scores"].groupby("layer").size().max())


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
    n_heads = _heads_per_layer(tables)
    out = []
    for claim in _judged(tables, params):
        for row in _definitions(claim, tables, criteria, params, n_heads):
            out.extend(_sweep(row, tables, params, factors))
    return pd.DataFrame(out)


def _value(measure: Measure, tables, params) -> float:
    value = measure(tables, params)
    return value.value if isinstance(value, Measured) else float(value)


def _judge_at(row: _Row, tables, params, factor: float) -> dict[str, Any]:
    """``row``'s definition ``factor`` times stricter: what was varied, the threshold, the
    measured value and the verdict."""
    claim = row.claim
    if claim.knob and row.definition == AS_CONFIGURED:
        knob = claim.knob
        threshold = claim.knob_chance + factor * (params[knob] - claim.knob_chance)
        value = _value(row.measure, tables, {**params, knob: threshold})
        criterion, varied = row.criterion, f"analysis.{knob}"
    else:
        criterion = strict_criterion(row.criterion, factor, row.chance, row.bounds)
        value, threshold, varied = (
            _value(row.measure, tables, params),
            main_bound(criterion),
            ("criterion bound"),
        )
    return {
        "varied": varied,
        "threshold": threshold,
        "measured": value,
        "verdict": verdict(value, criterion),
    }


def _sweep(row: _Row, tables, params, factors) -> list[dict[str, Any]]:
    return [
        {
            "claim_id": row.claim.id,
            "definition": row.definition,
            "factor": factor,
            **_judge_at(row, tables, params, factor),
        }
        for factor in factors
    ]


def margins_table(
    tables: Mapping[str, pd.DataFrame],
    criteria: Mapping[str, Mapping],
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """One row per judged claim: its configured verdict and that verdict's margin
    (:func:`affine_icl.margins.margin`): the ``loosest`` and ``strictest`` factor at which it
    is still the same, and ``margin`` in words."""
    n_heads = _heads_per_layer(tables)
    rows = []
    for claim in _judged(tables, params):
        configured = _definitions(claim, tables, criteria, params, n_heads)[0]
        if not claim.knob and _at_chance(configured):  # no factor moves it: nothing to search
            headline = _judge_at(configured, tables, params, 1.0)["verdict"]
            found, text = Margin(headline, math.nan, math.nan), NO_MARGIN
        else:
            found = margin(lambda f, row=configured: _judge_at(row, tables, params, f)["verdict"])
            text = found.text
        rows.append(
            {
                "claim_id": claim.id,
                "verdict": found.verdict,
                "loosest": found.loosest,
                "strictest": found.strictest,
                "margin": text,
            }
        )
    return pd.DataFrame(rows, columns=["claim_id", "verdict", "loosest", "strictest", "margin"])


def _at_chance(row: _Row) -> bool:
    """Whether ``row``'s criterion stays put under every strictness factor (its bounds are
    its chance level, as ">= 0" with chance 0)."""
    return strict_criterion(row.criterion, 2.0, row.chance, row.bounds) == strict_criterion(
        row.criterion, 1.0, row.chance, row.bounds
    )


def other_readings(
    tables: Mapping[str, pd.DataFrame],
    criteria: Mapping[str, Mapping],
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """Every alternative reading of every judged claim (:data:`ALTERNATIVES`) at its own
    definition: claim_id, reading, value, chance (its own or the claim's), verdict and
    ``chance_verdict``, the verdict a value at chance would get ("" without a chance level)."""
    n_heads = _heads_per_layer(tables)
    rows = []
    for claim in _judged(tables, params):
        for row in _definitions(claim, tables, criteria, params, n_heads)[1:]:
            judged = _judge_at(row, tables, params, 1.0)
            rows.append(
                {
                    "claim_id": claim.id,
                    "reading": row.definition,
                    "value": judged["measured"],
                    "chance": row.chance,
                    "verdict": judged["verdict"],
                    "chance_verdict": _chance_verdict(row),
                }
            )
    return pd.DataFrame(
        rows, columns=["claim_id", "reading", "value", "chance", "verdict", "chance_verdict"]
    )


def _chance_verdict(row: _Row) -> str:
    """The verdict a measurement at ``row``'s chance level would get ("" without one)."""
    if row.chance is None or math.isnan(row.chance):
        return ""
    return verdict(row.chance, row.criterion)


def better_readings(readings: pd.DataFrame, verdicts: Mapping[str, str]) -> pd.DataFrame:
    """Per claim, the alternative reading (:func:`other_readings`) whose verdict is closer to
    the paper's result than the configured one's (``verdicts``, by claim id), the closest of
    them (among equals, one that beats its chance level before one that does not, then the
    first listed); claims without such a reading have no row."""
    rows = []
    for claim_id, group in readings.groupby("claim_id", sort=False):
        literal = VERDICT_RANK.get(verdicts.get(claim_id, ""), -1)
        better = group[group["verdict"].map(VERDICT_RANK).fillna(3) < literal]
        if better.empty:
            continue
        order = better.assign(
            _rank=better["verdict"].map(VERDICT_RANK),
            _chance=[
                chance_as_good(c, v)
                for c, v in zip(better["chance_verdict"], better["verdict"], strict=True)
            ],
        ).sort_values(["_rank", "_chance"], kind="stable")
        rows.append(order.drop(columns=["_rank", "_chance"]).iloc[0])
    return pd.DataFrame(rows, columns=readings.columns).reset_index(drop=True)
