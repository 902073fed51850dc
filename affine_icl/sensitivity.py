"""How each verdict depends on its definition: its margin, every claim judged again with its
threshold made looser and stricter, and under the other definitions the paper's words allow.

A claim's threshold is the ``analysis`` parameter that decides which heads count (its
``knob``: a ratio to the uniform share, a z against a shuffled null) or, for a claim without
one, the bounds of its criterion. A *strictness factor* ``f`` makes it ask more of the model
(``f > 1``) or less (``f < 1``); :mod:`affine_icl.margins` says how, and finds each verdict's
margin: the range of factors over which it stays what it is (:func:`margins_table`). The grid
(:func:`sensitivity_table`) judges every claim at the configured factors, to be drawn.

The alternatives (each claim's ``alternatives``, :class:`~affine_icl.claims.claim.Alternative`)
are the readings the paper leaves open, each judged by its claim's criterion unless it brings
its own; :func:`other_readings` judges them at
``f = 1`` and :func:`better_readings` picks, per claim, the reading that gets closer to the
paper's result than the configured (literal) one, so the claims table can show both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from .claims.claim import Claim, Measure, Measured
from .claims.registry import judged_claims
from .claims.table import model_layers
from .claims.verdicts import VERDICT_RANK, chance_as_good, verdict
from .config import RunAnalysis
from .margins import NO_MARGIN, Margin, margin, strict_criterion

#: The configured definition's row label.
AS_CONFIGURED = "as configured"


def main_bound(criterion: Mapping[str, Any]) -> float:
    """The bound that decides 'reproduced': at_least, at_most, or the interval's lower end."""
    for key in ("at_least", "at_most"):
        if key in criterion:
            return float(criterion[key])
    return float(criterion["within"][0])


@dataclass
class _Row:
    """One definition of a claim, measured once (``value``); only a head count's threshold
    (the claim's knob) makes it measure again."""

    claim: Claim
    definition: str
    measure: Measure
    criterion: Mapping[str, Any]
    value: float
    chance: float | None = None
    bounds: tuple[float, float] = field(default=(-math.inf, math.inf))


def _definitions(
    claim: Claim, tables, criteria: Mapping[str, Mapping], settings, n_heads: int
) -> list[_Row]:
    """The configured definition of ``claim`` and its ``alternatives``, each with the
    criterion, chance level and bounds it is judged by (an alternative without its own chance
    level takes the claim's; a head count has chance 0 and at most ``n_heads``)."""
    configured = claim.measured(tables, settings)
    if claim.knob:  # a count of heads: 0 at chance, at most a layer's heads
        configured = Measured(configured.value, 0.0)
        claim = replace(claim, bounds=(0.0, float(n_heads)))
    rows = [
        _Row(
            claim,
            AS_CONFIGURED,
            claim.measure,
            criteria[claim.id],
            configured.value,
            configured.chance,
            claim.bounds,
        )
    ]
    for alt in claim.alternatives:
        measured = alt.measure(tables, settings)
        own = measured.chance if isinstance(measured, Measured) else math.nan
        rows.append(
            _Row(
                claim,
                alt.label,
                alt.measure,
                alt.criterion or criteria[claim.id],
                measured.value if isinstance(measured, Measured) else float(measured),
                own if not math.isnan(own) else configured.chance,
                alt.bounds or claim.bounds,
            )
        )
    return rows


def _judged(tables, settings: RunAnalysis):
    return judged_claims(settings.data.task, model_layers(tables))


def _heads_per_layer(tables) -> int:
    return int(tables["head_scores"].groupby("layer").size().max())


def sensitivity_table(
    tables: Mapping[str, pd.DataFrame],
    criteria: Mapping[str, Mapping],
    settings: RunAnalysis,
    factors: Sequence[float],
) -> pd.DataFrame:
    """One row per (claim, definition, factor): what was varied, the threshold, the measured
    value and the verdict. The configured definition first, then the claim's ``alternatives``."""
    if 1.0 not in factors:
        raise ValueError(f"the strictness factors {list(factors)} must include 1 (as configured)")
    n_heads = _heads_per_layer(tables)
    out = []
    for claim in _judged(tables, settings):
        for row in _definitions(claim, tables, criteria, settings, n_heads):
            out.extend(_sweep(row, tables, settings, factors))
    return pd.DataFrame(out)


def _value(measure: Measure, tables, settings) -> float:
    value = measure(tables, settings)
    return value.value if isinstance(value, Measured) else float(value)


def _judge_at(row: _Row, tables, settings, factor: float) -> dict[str, Any]:
    """``row``'s definition ``factor`` times stricter: what was varied, the threshold, the
    measured value and the verdict."""
    claim = row.claim
    if claim.knob and row.definition == AS_CONFIGURED:
        knob = claim.knob
        threshold = claim.knob_chance + factor * (
            getattr(settings.analysis, knob) - claim.knob_chance
        )
        varied_settings = replace(
            settings, analysis=replace(settings.analysis, **{knob: threshold})
        )
        value = _value(row.measure, tables, varied_settings)
        criterion, varied = row.criterion, f"analysis.{knob}"
    else:
        criterion = strict_criterion(row.criterion, factor, row.chance, row.bounds)
        value, threshold, varied = row.value, main_bound(criterion), "criterion bound"
    return {
        "varied": varied,
        "threshold": threshold,
        "measured": value,
        "verdict": verdict(value, criterion),
    }


def _sweep(row: _Row, tables, settings, factors) -> list[dict[str, Any]]:
    return [
        {
            "claim_id": row.claim.id,
            "definition": row.definition,
            "factor": factor,
            **_judge_at(row, tables, settings, factor),
        }
        for factor in factors
    ]


def margins_table(
    tables: Mapping[str, pd.DataFrame],
    criteria: Mapping[str, Mapping],
    settings: RunAnalysis,
) -> pd.DataFrame:
    """One row per judged claim: its configured verdict and that verdict's margin
    (:func:`affine_icl.margins.margin`): the ``loosest`` and ``strictest`` factor at which it
    is still the same, and ``margin`` in words."""
    n_heads = _heads_per_layer(tables)
    rows = []
    for claim in _judged(tables, settings):
        configured = _definitions(claim, tables, criteria, settings, n_heads)[0]
        if not claim.knob and _at_chance(configured):  # no factor moves it: nothing to search
            headline = _judge_at(configured, tables, settings, 1.0)["verdict"]
            found, text = Margin(headline, math.nan, math.nan), NO_MARGIN
        else:
            found = margin(lambda f, row=configured: _judge_at(row, tables, settings, f)["verdict"])
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
    settings: RunAnalysis,
) -> pd.DataFrame:
    """Every alternative reading of every judged claim (the claim's ``alternatives``) at its own
    definition: claim_id, reading, value, chance (its own or the claim's), verdict and
    ``chance_verdict``, the verdict a value at chance would get ("" without a chance level)."""
    n_heads = _heads_per_layer(tables)
    rows = []
    for claim in _judged(tables, settings):
        for row in _definitions(claim, tables, criteria, settings, n_heads)[1:]:
            judged = _judge_at(row, tables, settings, 1.0)
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
