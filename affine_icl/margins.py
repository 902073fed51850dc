"""How far each verdict is from changing: its margin, in strictness factors.

A verdict is only as informative as the distance between the measurement and the criterion's
bound. A *strictness factor* ``s`` makes a claim's definition ask more of the model (``s > 1``)
or less (``s < 1``), ``s = 1`` being the configured one (:func:`strict_criterion`):

- a threshold that decides which heads count (a claim's ``knob``: a ratio to the uniform share,
  a z against a shuffled null) moves to ``chance + s * (threshold - chance)``;
- a criterion's bound (``at_least``, ``at_most`` and their "differs" bounds) moves the same way
  when chance fails the criterion (the claim is that an effect is present: more distance from
  chance asks more); when chance passes it (the claim is that an effect is absent or small, as
  "the MSE stays at 1e-4"), asking more brings the bound *closer* to chance:
  ``chance + (bound - chance) / s``;
- a ``within`` interval keeps its centre and divides its half-widths by ``s``.

Bounds are clipped to the values the measurement can take. The verdict's **margin** is the
range of factors over which it stays what it is at ``s = 1``, found by bisection to
:data:`TOLERANCE` within :data:`SEARCH` (:func:`margin`): "holds up to x1.4 stricter", "fails
until x0.6 looser", "differs from x0.7 to x1.3". Verdicts are ordered (reproduced, differs in
degree, not reproduced) and move one way as ``s`` grows, so each range is one interval. The one
word kept is defined by a rule: **robust** when the same verdict holds from x0.5 to x2
(:data:`ROBUST`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .claims.verdicts import NOT_REPRODUCED, REPRODUCED, VERDICT_RANK, chance_passes

#: The strictness factors searched: 10x looser to 10x stricter.
SEARCH: tuple[float, float] = (0.1, 10.0)
#: How closely the bisection finds a verdict's edge (in the factor).
TOLERANCE = 1e-4
#: A verdict that holds over this range of factors is called robust.
ROBUST: tuple[float, float] = (0.5, 2.0)
#: The rule, in words.
ROBUST_RULE = f"the same verdict from x{ROBUST[0]:g} to x{ROBUST[1]:g}"

_ORDER = tuple(VERDICT_RANK)

#: The margin of a verdict whose criterion no strictness factor moves (">= 0", chance 0).
NO_MARGIN = "none: the criterion's bound is chance itself, which no factor moves"


def strict_criterion(
    criterion: Mapping[str, Any],
    factor: float,
    chance: float | None,
    bounds: tuple[float, float] = (-math.inf, math.inf),
) -> dict[str, Any]:
    """``criterion`` made ``factor`` times stricter (module docstring); NaN chance counts as 0."""
    if factor <= 0:
        raise ValueError(f"a strictness factor must be positive, not {factor}")
    c = 0.0 if chance is None or math.isnan(chance) else float(chance)
    if "within" in criterion:
        out = {}
        for key in ("within", "differs_within"):
            if key in criterion:
                lo, hi = criterion[key]
                mid, half = (lo + hi) / 2, (hi - lo) / 2 / factor
                out[key] = [mid - half, mid + half]
        return out
    scale = 1 / factor if chance_passes(criterion, c) else factor
    return {
        key: min(max(c + scale * (value - c), bounds[0]), bounds[1])
        for key, value in criterion.items()
    }


def is_robust(loosest: float, strictest: float) -> bool:
    """The rule of :data:`ROBUST`: the same verdict from its looser to its stricter end."""
    return loosest <= ROBUST[0] and strictest >= ROBUST[1]


@dataclass(frozen=True)
class Margin:
    """The factors between which a verdict stays what it is at ``s = 1``: ``loosest`` and
    ``strictest`` (the ends of :data:`SEARCH` where it holds that far; NaN where the verdict is
    not a judgement: not measurable, not applicable)."""

    verdict: str
    loosest: float
    strictest: float

    @property
    def robust(self) -> bool:
        return is_robust(self.loosest, self.strictest)

    @property
    def text(self) -> str:
        return margin_text(self.verdict, self.loosest, self.strictest)


def _x(factor: float) -> str:
    return f"x{factor:.3g}"


def margin_text(verdict_: str, loosest: float, strictest: float) -> str:
    """How far a verdict is from changing, in words: "holds up to x1.4 stricter", "fails until
    x0.6 looser", "differs from x0.7 to x1.3", with " (robust)" where the rule of
    :data:`ROBUST` is met (the same verdict from x0.5 to x2); "-" for a verdict that is no
    judgement or has no margin (NaN ends)."""
    if verdict_ not in _ORDER or math.isnan(loosest) or math.isnan(strictest):
        return "-"
    if verdict_ == REPRODUCED:
        text = (
            f"holds even {_x(SEARCH[1])} stricter"
            if strictest >= SEARCH[1]
            else f"holds up to {_x(strictest)} stricter"
        )
    elif verdict_ == NOT_REPRODUCED:
        text = (
            f"fails even {_x(SEARCH[0])} looser"
            if loosest <= SEARCH[0]
            else f"fails until {_x(loosest)} looser"
        )
    else:
        looser = " or looser" if loosest <= SEARCH[0] else ""
        stricter = " or stricter" if strictest >= SEARCH[1] else ""
        text = f"differs from {_x(loosest)}{looser} to {_x(strictest)}{stricter}"
    if is_robust(loosest, strictest):
        text += " (robust)"
    return text


def _edge(verdict_at: Callable[[float], str], same: str, inside: float, outside: float) -> float:
    """The factor between ``inside`` (verdict ``same``) and ``outside`` where the verdict
    changes, to :data:`TOLERANCE`; ``outside`` itself when the verdict holds there too."""
    if verdict_at(outside) == same:
        return outside
    while abs(outside - inside) > TOLERANCE:
        middle = (inside + outside) / 2
        if verdict_at(middle) == same:
            inside = middle
        else:
            outside = middle
    return inside


def margin(verdict_at: Callable[[float], str]) -> Margin:
    """The margin of the verdict ``verdict_at(1.0)``: ``verdict_at(s)`` is the verdict with the
    definition ``s`` times stricter; searched by bisection within :data:`SEARCH`."""
    headline = verdict_at(1.0)
    if headline not in _ORDER:
        return Margin(headline, math.nan, math.nan)
    # start from the ends of ROBUST where the verdict holds there, so a verdict that holds at
    # x2 is never reported as holding only to x1.9999
    looser = ROBUST[0] if verdict_at(ROBUST[0]) == headline else 1.0
    stricter = ROBUST[1] if verdict_at(ROBUST[1]) == headline else 1.0
    return Margin(
        headline,
        _edge(verdict_at, headline, looser, SEARCH[0]),
        _edge(verdict_at, headline, stricter, SEARCH[1]),
    )


def margin_across(
    verdicts: Sequence[str], loosest: Sequence[float], strictest: Sequence[float]
) -> str:
    """The margins of one claim over several runs, by verdict: for each verdict some run has,
    how many runs and the range of factors over which it holds in every one of them
    ("reproduced in 3: holds up to x1.3 stricter; differs in degree in 2: differs from x0.6 to
    x1.2"). "-" when no run judged the claim."""
    parts = []
    for v in _ORDER:
        rows = [(lo, hi) for w, lo, hi in zip(verdicts, loosest, strictest, strict=True) if w == v]
        if not rows:
            continue
        lo, hi = max(r[0] for r in rows), min(r[1] for r in rows)
        text = margin_text(v, lo, hi)
        # a judged verdict without a margin: its criterion's bound is chance itself
        parts.append(f"{v} in {len(rows)}: {NO_MARGIN if text == '-' else text}")
    return "; ".join(parts) or "-"
