"""One run's claims table: every listed claim measured on the run's tables, its chance level,
criterion and verdict, whether chance passes that criterion, and (given them) the verdict's
margin and the other reading of the paper's words that gets closer to its result."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from ..config import RunAnalysis
from .claim import Claim, Measured
from .registry import judged_claims, listed_claims
from .verdicts import NOT_APPLICABLE, chance_passes, describe, verdict


def _why_not_applicable(claim: Claim, task: str, n_layers: int) -> str:
    """The criterion cell of a claim a run does not judge: another task's, or too few layers."""
    if not claim.applies_to(task):
        return f"-: not a {task} claim"
    return f"-: needs {claim.layers} layers, the model has {n_layers}"


def model_layers(tables: Mapping[str, pd.DataFrame]) -> int:
    """The number of layers of the model the claim tables describe (from its head scores)."""
    return int(tables["head_scores"]["layer"].max()) + 1


def chance_note(claim: Claim, passes: bool) -> str:
    """What a reader must know when chance itself passes a claim's criterion (``passes``,
    :func:`~affine_icl.claims.verdicts.chance_passes`): for a claim that an effect is absent
    that is its design; for any other the verdict cannot tell the model from chance. "" when
    chance fails."""
    if not passes:
        return ""
    if claim.absence:
        return "chance passes by design: the claim is that the effect is absent or small"
    return "chance passes this criterion: the verdict cannot tell the model from chance"


def claims_table(
    tables: Mapping[str, pd.DataFrame],
    criteria: Mapping[str, Mapping],
    settings: RunAnalysis,
    margins: pd.DataFrame | None = None,
    readings: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per claim: id, section, claim, paper, measured and what was measured, its
    chance level and effect size (:class:`Measured`) and what they are, criterion, verdict,
    ``chance_passes`` (whether a measurement at chance would be reproduced too) and
    ``chance_note`` (:func:`chance_note`). Given ``margins``
    (:func:`affine_icl.sensitivity.margins_table`), the verdict's margin in strictness factors
    (``loosest``, ``strictest``, ``margin``); given ``readings``
    (:func:`affine_icl.sensitivity.better_readings`), the other reading of the paper's words
    that gets closer to its result (``other_reading``, ``other_value``, ``other_chance``,
    ``other_verdict``, ``other_chance_verdict``; empty where none does)."""
    task, n_layers = settings.data.task, model_layers(tables)
    judged = {c.id for c in judged_claims(task, n_layers)}
    missing = [c for c in judged if c not in criteria]
    if missing:
        raise KeyError(f"claims: no criterion configured for {', '.join(sorted(missing))}")
    margin_of = margins.set_index("claim_id") if margins is not None else None
    reading_of = readings.set_index("claim_id") if readings is not None else None
    rows = []
    for claim in listed_claims(task):
        applies = claim.id in judged
        m = claim.measured(tables, settings) if applies else Measured(math.nan)
        passes = (
            applies
            and claim.chance_in_measured_units
            and chance_passes(criteria[claim.id], m.chance)
        )
        row = {
            "claim_id": claim.id,
            "section": claim.section,
            "claim": claim.statement,
            "paper": claim.reported,
            "measured": m.value,
            "measured_as": claim.unit,
            "chance": m.chance,
            "chance_as": claim.chance_as,
            "effect": m.effect,
            "effect_as": claim.effect_as,
            "criterion": describe(criteria[claim.id])
            if applies
            else _why_not_applicable(claim, task, n_layers),
            "verdict": verdict(m.value, criteria[claim.id]) if applies else NOT_APPLICABLE,
            "chance_passes": bool(passes),
            "chance_note": chance_note(claim, bool(passes)),
        }
        if margin_of is not None:
            found = claim.id in margin_of.index
            row |= {
                key: margin_of.at[claim.id, key] if found else default
                for key, default in (("loosest", math.nan), ("strictest", math.nan))
            } | {"margin": margin_of.at[claim.id, "margin"] if found else "-"}
        if reading_of is not None:
            found = claim.id in reading_of.index
            row |= {
                f"other_{key}": reading_of.at[claim.id, key] if found else default
                for key, default in (
                    ("reading", ""),
                    ("value", math.nan),
                    ("chance", math.nan),
                    ("verdict", ""),
                    ("chance_verdict", ""),
                )
            }
        rows.append(row)
    return pd.DataFrame(rows)
