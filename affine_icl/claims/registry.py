"""All claims, in the paper's order (section by section, then its future work), and what a run
lists and judges of them. config.yaml's ``claims:`` (the criteria) is checked against them here.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Final

from ..config import ConfigError
from . import (
    future_work,
    section4_1,
    section4_2,
    section4_3,
    section4_4,
    section4_5,
    section4_6,
    section4_7,
    section4_8,
)
from .claim import Claim

#: Every claim the pipeline checks, in the order of the claims table.
CLAIMS: Final[tuple[Claim, ...]] = (
    *section4_1.CLAIMS,
    *section4_2.CLAIMS,
    *section4_3.CLAIMS,
    *section4_4.CLAIMS,
    *section4_5.CLAIMS,
    *section4_6.CLAIMS,
    *section4_7.CLAIMS,
    *section4_8.CLAIMS,
    *future_work.CLAIMS,
)

#: The claim ids, in table order, and each claim by its id.
CLAIM_IDS: Final[tuple[str, ...]] = tuple(c.id for c in CLAIMS)
BY_ID: Final[dict[str, Claim]] = {c.id: c for c in CLAIMS}

#: Claims whose ``chance`` column is in the units of their measurement (a head count's chance
#: is that of the per-head score behind it).
CHANCE_IN_UNITS: Final[dict[str, bool]] = {c.id: c.chance_in_measured_units for c in CLAIMS}

#: The paper's sections that make claims, in order (the atlas draws one figure each).
SECTIONS: Final[tuple[str, ...]] = tuple(dict.fromkeys(c.section for c in CLAIMS))


def listed_claims(task: str) -> tuple[Claim, ...]:
    """The claims a run of ``task`` lists: every claim of the paper (those that do not apply to
    the task as "not applicable") and the future-work claims of its own task."""
    return tuple(c for c in CLAIMS if c.listed_for_every_task or c.applies_to(task))


def judged_claims(task: str, n_layers: int = 3) -> tuple[Claim, ...]:
    """The claims that are measured and judged for a run of ``task`` with ``n_layers`` layers."""
    return tuple(c for c in CLAIMS if c.applies_to(task) and n_layers >= c.layers)


def check_criteria(criteria: Mapping[str, Any]) -> None:
    """config.yaml's ``claims:`` against the registry, in any order: every key a claim's id
    (a typo is named with the id it resembles) and every claim with a criterion."""
    for key in criteria:
        if key not in BY_ID:
            close = difflib.get_close_matches(key, CLAIM_IDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"claims: unknown claim id {key!r}{hint}")
    missing = [c for c in CLAIM_IDS if c not in criteria]
    if missing:
        raise ConfigError(
            f"claims: no criterion for {', '.join(missing)} (config.yaml gives one per claim)"
        )
