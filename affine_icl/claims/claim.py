"""A claim of the paper as one object: what the paper says, how this pipeline measures it, what
chance gives, and the other readings the paper's words allow.

A measurement is a function of the run's tables (``tables``: the claims rule's inputs by name,
:data:`~affine_icl.claims.read.TABLES`) and of what the run is measured with (a
:class:`~affine_icl.config.RunAnalysis`: the ``analysis`` settings, ``loss_from_index`` and the
data settings); it returns a plain number or a :class:`Measured` with its chance level and an
effect size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..config import RunAnalysis
from ..tasks import families_predicting

#: The section of the claims that the paper's circuit story predicts for the recurrences of
#: its future work (section 5: "higher-dimensional linear recurrences ... polynomial
#: recurrences"); the paper reports no value for them.
FUTURE_WORK = "5 (future work)"


@dataclass(frozen=True)
class Measured:
    """A claim's measurement beside its chance level: ``chance`` is what the measured quantity,
    or the score behind it, gives when the effect is absent (uniform attention, shuffled
    weights, no change), ``effect`` an effect size of the scores against it (a ratio or a z);
    the claim's ``chance_as`` and ``effect_as`` say which. NaN where there is none."""

    value: float
    chance: float = math.nan
    effect: float = math.nan


#: ``measure(tables, settings)``: the measurement from the run's tables and what the run is
#: measured with, a plain number where it has no chance level.
Measure = Callable[[Mapping[str, pd.DataFrame], RunAnalysis], "Measured | float"]


@dataclass(frozen=True)
class Alternative:
    """Another definition of a claim that the paper's words allow: a label, its measure (which
    may give its own chance level, :class:`Measured`), and its own criterion and bounds where
    the claim's do not fit (a different quantity). Judged by :mod:`affine_icl.sensitivity`."""

    label: str
    measure: Measure
    criterion: Mapping[str, Any] | None = None
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class Claim:
    """One quantitative statement of the paper and how it is measured.

    What the paper says: ``id``, ``section``, ``statement`` and ``reported`` (as the claims table
    shows them); ``layers``, the layers a model needs for it (3 for a layer-2 claim). Which task
    families it makes sense for is the families' to say (:meth:`applies_to`). A claim of the
    paper outside its families or on a shallower model is "not applicable"; a future-work claim
    (section :data:`FUTURE_WORK`) is listed only for the runs of its family.

    How it is measured: ``measure``, ``unit`` (what the number is), ``chance_as`` and
    ``effect_as`` (what its chance level and effect size are); ``knob``, the ``analysis``
    setting (a field of :class:`~affine_icl.config.AnalysisConfig`) that decides which heads
    count (varied by :mod:`affine_icl.sensitivity`) and ``knob_chance`` the value it has at
    chance (1 for a ratio to chance, 0 for a z); ``bounds``, the values the measurement can take
    (a share, a cosine); ``absence``: the claim is that an effect is absent or small, so what
    chance gives passes its criterion by design; ``alternatives``: the other definitions the
    paper's words allow.
    """

    id: str
    section: str
    statement: str
    reported: str
    measure: Measure
    unit: str = ""
    chance_as: str = ""
    effect_as: str = ""
    knob: str | None = None
    knob_chance: float = 0.0
    bounds: tuple[float, float] = (-math.inf, math.inf)
    absence: bool = False
    alternatives: tuple[Alternative, ...] = ()
    layers: int = 1

    def applies_to(self, task: str) -> bool:
        """Whether the claim makes sense for a run of the task family ``task``: a claim that some
        family predicts (its class's ``predicted_claims``, :mod:`affine_icl.tasks`) applies to
        those families only; any other to every family."""
        owners = families_predicting(self.id)
        return not owners or task in owners

    @property
    def listed_for_every_task(self) -> bool:
        return self.section != FUTURE_WORK

    @property
    def chance_in_measured_units(self) -> bool:
        """Whether ``chance`` is a value of the measurement itself; a head count's chance is
        that of the score behind it (per head), not a number of heads."""
        return self.knob is None

    def measured(self, tables: Mapping[str, pd.DataFrame], settings: RunAnalysis) -> Measured:
        value = self.measure(tables, settings)
        return value if isinstance(value, Measured) else Measured(float(value))
