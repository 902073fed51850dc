"""The task families as the configuration reads them: each family's name and the data settings
it reads, the one registry (:data:`FAMILIES`) that both the config checks and the tasks use.

:mod:`affine_icl.config` (layer 1) hashes the data settings and checks them against each other
(``train.loss_from_index`` against the terms a family needs, the raw terms against float32)
before any tensor exists, and must not import :mod:`affine_icl.tasks` (layer 1.5, which reads the
config). So what those checks need of a family is data here, below both: a :class:`Family` per
name, and each class of :mod:`affine_icl.tasks` takes its own (``Task.family``) rather than
restating it. Everything a family *does* (sampling, the next term, the fit, the claims it
predicts) lives in its class there; a new family is one class there plus its line here (and the
schema's ``data.task`` enum, which ``tests/test_tasks.py`` holds to the same names).

A count given as a setting's name (``"order"``) is read from the data settings: a mapping (the
config's ``data`` section) or a :class:`~affine_icl.config.DataConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: The paper's family: the config's own ``data`` section, Figure 1 and the shared population.
PAPER_TASK: Final = "affine"


def _setting(data: Mapping[str, Any] | Any, key: str) -> Any:
    return data[key] if isinstance(data, Mapping) else getattr(data, key)


@dataclass(frozen=True)
class Family:
    """What the data settings say of one task family, before any tensor.

    ``parameter``: the data setting the family adds to the shared ones (``order``, ``degree``),
    if any; the others' values do not define its data (:meth:`DataConfig.identity`).
    ``initial_terms``: random initial terms per sequence, the previous terms each term reads: a
    number or the setting that gives it. ``growth``: by how many times ``max |c_range|`` one step
    can multiply the largest raw term (a number or a setting: the linear recurrence sums ``k``
    terms); ``None`` where the ranges bound no term (the polynomial's are kept bounded by
    redrawing instead)."""

    name: str
    parameter: str | None = None
    initial_terms: int | str = 1
    growth: int | str | None = 1

    @property
    def paper(self) -> bool:
        """Whether this is the paper's own family (its hashes predate the families)."""
        return self.name == PAPER_TASK

    def setting(self, data: Mapping[str, Any] | Any) -> tuple[str, int] | None:
        """The family's own parameter and its value, ``("order", 2)``, if it has one."""
        return (self.parameter, _setting(data, self.parameter)) if self.parameter else None

    def n_initial(self, data: Mapping[str, Any] | Any) -> int:
        """Random initial terms per sequence (``k`` for the linear family, else 1)."""
        return self._count(self.initial_terms, data)

    def first_predictable(self, data: Mapping[str, Any] | Any) -> int:
        """The first output index whose target the terms before it determine: with
        :meth:`n_initial` ``k`` initial terms, two equations per component need ``a_0 .. a_(k+1)``,
        seen at output ``k + 1`` (the least-squares fit is exact from there)."""
        return self.n_initial(data) + 1

    def step_growth(self, data: Mapping[str, Any] | Any) -> int | None:
        """:attr:`growth` read from ``data`` (``None``: the ranges do not bound the terms)."""
        return None if self.growth is None else self._count(self.growth, data)

    @staticmethod
    def _count(value: int | str, data: Mapping[str, Any] | Any) -> int:
        return _setting(data, value) if isinstance(value, str) else value


#: Every task family by name (``data.task``), in the order the schema lists them.
FAMILIES: Final[dict[str, Family]] = {
    f.name: f
    for f in (
        Family(PAPER_TASK),
        Family("linear", parameter="order", initial_terms="order", growth="order"),
        Family("diagonal"),
        Family("polynomial", parameter="degree", growth=None),
    )
}

#: The settings some family adds (``order``, ``degree``): data only for the family that reads it.
PARAMETERS: Final = frozenset(f.parameter for f in FAMILIES.values() if f.parameter)
