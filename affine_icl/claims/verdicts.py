"""Criteria and verdicts: how a measured value is judged (``claims:`` in config.yaml).

A measurement that cannot be made (NaN) is "not measurable", never reproduced; a claim that
makes no sense for a run (another task family, too few layers) is "not applicable".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

REPRODUCED, DIFFERS, NOT_REPRODUCED, NOT_MEASURABLE, NOT_APPLICABLE = (
    "reproduced",
    "differs in degree",
    "not reproduced",
    "not measurable",
    "not applicable",
)

#: The judgements in order, from the paper's result to its absence (lower: closer).
VERDICT_RANK: dict[str, int] = {REPRODUCED: 0, DIFFERS: 1, NOT_REPRODUCED: 2}


def verdict(value: float, criterion: Mapping[str, Any]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURABLE
    if "at_least" in criterion:
        if value >= criterion["at_least"]:
            return REPRODUCED
        return DIFFERS if value >= criterion.get("differs_down_to", math.inf) else NOT_REPRODUCED
    if "at_most" in criterion:
        if value <= criterion["at_most"]:
            return REPRODUCED
        return DIFFERS if value <= criterion.get("differs_up_to", -math.inf) else NOT_REPRODUCED
    lo, hi = criterion["within"]
    if lo <= value <= hi:
        return REPRODUCED
    lo2, hi2 = criterion.get("differs_within", (lo, hi))
    return DIFFERS if lo2 <= value <= hi2 else NOT_REPRODUCED


def chance_as_good(chance_verdict: str, verdict_: str) -> bool:
    """Whether a value at chance, judged ``chance_verdict``, does as well as the measurement
    judged ``verdict_`` (no chance level, ""; counts as worse)."""
    return VERDICT_RANK.get(chance_verdict, 3) <= VERDICT_RANK.get(verdict_, 3)


def chance_passes(criterion: Mapping[str, Any], chance: float | None) -> bool:
    """Whether a measurement equal to ``chance`` would be judged reproduced (NaN: no)."""
    if chance is None or math.isnan(chance):
        return False
    return verdict(chance, criterion) == REPRODUCED


def describe(criterion: Mapping[str, Any]) -> str:
    if "at_least" in criterion:
        text = f">= {criterion['at_least']:g}"
        extra = criterion.get("differs_down_to")
        return text + (f" (differs in degree if >= {extra:g})" if extra is not None else "")
    if "at_most" in criterion:
        text = f"<= {criterion['at_most']:g}"
        extra = criterion.get("differs_up_to")
        return text + (f" (differs in degree if <= {extra:g})" if extra is not None else "")
    lo, hi = criterion["within"]
    text = f"in [{lo:g}, {hi:g}]"
    if "differs_within" in criterion:
        lo2, hi2 = criterion["differs_within"]
        text += f" (differs in degree if in [{lo2:g}, {hi2:g}])"
    return text
