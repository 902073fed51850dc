"""The :class:`Task` interface every task family implements, and what the families share:
drawing sequences (and drawing again those that escape), the terms a recurrence generates, and
the least-squares fit of the family's unknowns.

A family is one subclass (one module of this package each): it names its :class:`Family` (the
settings it reads, :mod:`affine_icl.families`), its recurrence in words, the claims it predicts
and whether its sequences alternate as a whole, and implements the one step of its recurrence
(:meth:`Task.next_term`) and, where they differ from the shared ones, the regressors of the fit,
how the coefficients are drawn, solved for or rescaled. Defining the subclass registers it in
:data:`TASKS`, where :func:`affine_icl.tasks.task_of` finds it by ``data.task``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from ..config import DataConfig
from ..families import Family

#: Every family's class by name (``data.task``), filled by defining the class.
TASKS: dict[str, type[Task]] = {}

#: Rounds of redrawing before the sampler gives up and names the ranges to narrow.
MAX_ROUNDS = 200


def uniform(
    shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator, device
) -> Tensor:
    """Entries ~ U(``bounds``) of ``shape``, from ``generator`` (the one draw every number of
    the data comes from, in the order the sampler makes them)."""
    lo, hi = bounds
    return torch.rand(shape, generator=generator, device=device) * (hi - lo) + lo


class Task(ABC):
    """A task family bound to its data settings (``cfg``, a
    :class:`~affine_icl.config.DataConfig` whose ``task`` is the family's name).

    An abstract base class rather than a :class:`typing.Protocol`: the families differ only in a
    few steps (the next term, the fit's regressors, the coefficients), and share the rest (the
    draw and its redrawing, the terms of a recurrence, the centred least squares, the names),
    which a Protocol would make every family restate; and a subclass registers itself
    (:data:`TASKS`), so a new family is this one class (and its settings'
    :class:`~affine_icl.families.Family`).

    Class attributes each family sets: ``family`` (its settings), ``recurrence`` (one line, for
    model cards and titles), ``predicted_claims`` (ids of :data:`affine_icl.paper.PAPER_CLAIMS`
    that make sense for this family alone: the checkerboard for the affine family, the future
    work's prediction for the others), ``alternates`` (whether ``c_1 < 0`` makes the whole
    sequence alternate in sign, the checkerboard notion of Figures 5, 6 and 17) and
    ``redraw_beyond`` (raw terms beyond this magnitude, or not finite, make a sequence be drawn
    again; ``None``: never, the affine family, whose data predate redrawing).
    """

    family: ClassVar[Family]
    recurrence: ClassVar[str]
    predicted_claims: ClassVar[tuple[str, ...]] = ()
    alternates: ClassVar[bool] = False
    redraw_beyond: ClassVar[float | None] = math.inf

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "family" in cls.__dict__:
            TASKS[cls.family.name] = cls

    def __init__(self, cfg: DataConfig) -> None:
        if cfg.task != self.family.name:
            raise ValueError(f"{type(self).__name__} is the {self.name} task, not {cfg.task!r}")
        self.cfg = cfg

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe})"

    # ------------------------------------------------------------------------------ names

    @property
    def name(self) -> str:
        """``data.task``: ``affine``, ``linear``, ``diagonal``, ``polynomial``."""
        return self.family.name

    @property
    def paper(self) -> bool:
        """Whether this is the paper's family (its population table keeps the columns it had)."""
        return self.family.paper

    @property
    def describe(self) -> str:
        """The family in words, e.g. ``linear (order 2)``."""
        own = self.family.setting(self.cfg)
        return f"{self.name} ({own[0]} {own[1]})" if own else self.name

    @property
    def label(self) -> str:
        """A short filesystem-safe name of the family: ``affine``, ``linear2``, ``polynomial3``."""
        own = self.family.setting(self.cfg)
        return f"{self.name}{own[1]}" if own else self.name

    # ------------------------------------------------------------------------------ identifiability

    @property
    def n_initial(self) -> int:
        """Random initial terms per sequence, the previous terms each term reads."""
        return self.family.n_initial(self.cfg)

    @property
    def first_exact(self) -> int:
        """The first output index where :meth:`least_squares` is exact (its terms identify the
        recurrence), the first ``train.loss_from_index`` the config allows."""
        return self.family.first_predictable(self.cfg)

    @property
    @abstractmethod
    def n_coefs(self) -> int:
        """Coefficients per sequence."""

    # ------------------------------------------------------------------------------ sampling

    def draw_coefs(
        self, shape: tuple[int, ...], generator: torch.Generator, c: Tensor | None = None
    ) -> Float[Tensor, "... m"]:
        """The coefficients of ``shape`` sequences, each ~ U(``c_range``). ``c`` (fixing them)
        is for the affine family alone: another's sequences may be drawn again."""
        if c is not None:
            raise ValueError(f"c can only be fixed for the affine task, not {self.describe}")
        return uniform((*shape, self.n_coefs), self.cfg.c_range, generator, generator.device)

    @abstractmethod
    def next_term(
        self,
        history: Float[Tensor, "... k dim"],
        coefs: Float[Tensor, "... m"],
        d: Float[Tensor, "... dim"],
    ) -> Float[Tensor, "... dim"]:
        """The term after ``history`` (its last :attr:`n_initial` terms are used)."""

    def recurrence_terms(
        self,
        initial: Float[Tensor, "... k dim"],
        coefs: Float[Tensor, "... m"],
        d: Float[Tensor, "... dim"],
        max_length: int,
    ) -> Float[Tensor, "... T dim"]:
        """Terms ``a_0 .. a_max_length`` (``T = max_length + 1``) from the initial terms."""
        terms = list(initial.unbind(-2))
        k = len(terms)
        for _ in range(max_length + 1 - k):
            terms.append(self.next_term(torch.stack(terms[-k:], dim=-2), coefs, d))
        return torch.stack(terms[: max_length + 1], dim=-2)

    def normalised_coefs(self, coefs: Tensor, scale: Tensor) -> Tensor:
        """The coefficients of the recurrence the sequence divided by ``scale`` satisfies (the
        same ones, for a recurrence linear in the terms)."""
        return coefs

    def summary_c(self, coefs: Float[Tensor, "*batch m"]) -> Float[Tensor, "*batch"]:
        """The one number per sequence the analyses call ``c`` (Figs 5/6 pick sequences by its
        sign): the first coefficient, ``c_1`` (of ``a_(n-1)``; for the diagonal family that of
        the first component, which alternates when it is negative)."""
        return coefs[..., 0]

    def _draw(self, shape: tuple[int, ...], generator: torch.Generator, c: Tensor | None = None):
        """Initial terms, ``d`` and coefficients, in that order on ``generator``."""
        cfg, k, device = self.cfg, self.n_initial, generator.device
        dim = cfg.vector_dim
        initial = uniform(
            (*shape, dim) if k == 1 else (*shape, k, dim), cfg.init_range, generator, device
        )
        if k == 1:
            initial = initial[..., None, :]
        d = uniform((*shape, dim), cfg.init_range, generator, device)
        return initial, self.draw_coefs(shape, generator, c), d

    def draw_raw(
        self,
        shape: tuple[int, ...],
        max_length: int,
        generator: torch.Generator,
        *,
        c: Tensor | None = None,
    ) -> tuple[Float[Tensor, "... T dim"], Float[Tensor, "... m"], Float[Tensor, "... dim"]]:
        """Raw (unnormalised) terms ``a_0 .. a_max_length``, coefficients and ``d`` of ``shape``
        sequences on ``generator``'s device. ``c`` fixes the affine coefficient (Figure 1).

        A sequence with a raw term that is not finite or beyond :attr:`redraw_beyond` is drawn
        again, on the same generator, so the result is seeded; after :data:`MAX_ROUNDS` rounds
        the error names how many kept escaping and the ranges to narrow.
        """
        initial, coefs, d = self._draw(shape, generator, c)
        raw = self.recurrence_terms(initial, coefs, d, max_length)
        bound = self.redraw_beyond
        if bound is None:
            return raw, coefs, d
        total = math.prod(shape)

        def escaped(raw: Tensor) -> Tensor:
            return ~(raw.isfinite() & (raw.abs() <= bound)).flatten(-2).all(-1)

        flat_raw, flat_coefs, flat_d = (
            t.reshape(total, *t.shape[len(shape) :]) for t in (raw, coefs, d)
        )
        pending = escaped(flat_raw).nonzero()[:, 0]  # rows still to draw, in row order
        for _ in range(MAX_ROUNDS):
            n_bad = len(pending)
            if not n_bad:
                return raw, coefs, d
            initial, new_coefs, new_d = self._draw((n_bad,), generator)
            new_raw = self.recurrence_terms(initial, new_coefs, new_d, max_length)
            ok = ~escaped(new_raw)
            rows = pending[ok]
            flat_raw[rows], flat_coefs[rows], flat_d[rows] = new_raw[ok], new_coefs[ok], new_d[ok]
            pending = pending[~ok]
        cfg = self.cfg
        raise ValueError(
            f"data: {n_bad} of {total} {self.describe} sequences still exceed {bound:g} within "
            f"{max_length + 1} terms after {MAX_ROUNDS} redraws; narrow data.c_range "
            f"{list(cfg.c_range)} or data.init_range {list(cfg.init_range)}"
        )

    # ------------------------------------------------------------------------------ least squares

    def features(self, terms: Float[Tensor, "... t dim"], n: int) -> Float[Tensor, "... dim m"]:
        """The regressors of ``a_n`` for every component (the coefficients multiply them):
        here the previous term alone, ``a_(n-1)``."""
        return terms[..., n - 1, :, None]

    def solve(
        self,
        x: Float[Tensor, "batch n dim m"],
        y: Float[Tensor, "batch n dim"],
        xc: Float[Tensor, "batch n dim m"],
        yc: Float[Tensor, "batch n dim"],
    ) -> tuple[Float[Tensor, "batch m"], Float[Tensor, "batch dim"]]:
        """Coefficients and ``d`` from the regressors ``x`` and targets ``y`` of every equation
        (``xc``, ``yc``: centred over ``n``, which eliminates ``d``): the coefficients, shared by
        every component, solve one least-squares problem per sequence (``[B, N*D, m]``)."""
        b, m = x.shape[0], x.shape[-1]
        sol = torch.linalg.lstsq(xc.reshape(b, -1, m), yc.reshape(b, -1, 1), driver="gelsd")
        coefs = sol.solution[..., 0]  # [B, m]
        d = y.mean(-2) - (x.mean(-3) * coefs[:, None, :]).sum(-1)
        return coefs, d

    def fit(
        self, terms: Float[Tensor, "batch t dim"]
    ) -> tuple[Float[Tensor, "batch m"], Float[Tensor, "batch dim"]]:
        """Least-squares coefficients and ``d`` of the family from the terms ``a_0 .. a_(t-1)``.

        The equations are ``a_n = features(a_0 .. a_(n-1)) . c + d`` for every ``n >=
        n_initial`` and every component (:meth:`features`). ``d`` is eliminated by centring each
        component over ``n``; :meth:`solve` finds the coefficients, with the minimum-norm
        solution (``gelsd``) where the terms do not determine them. Float64.
        """
        terms = terms.double()
        k, t = self.n_initial, terms.shape[-2]
        if t <= k:
            raise ValueError(f"{self.describe}: {t} terms give no equation (need more than {k})")
        x = torch.stack([self.features(terms, n) for n in range(k, t)], dim=-3)  # [B, N, D, m]
        y = terms[..., k:, :]  # [B, N, D]
        return self.solve(x, y, x - x.mean(-3, keepdim=True), y - y.mean(-2, keepdim=True))

    def least_squares(self, terms: Float[Tensor, "batch T dim"]) -> Float[Tensor, "batch T dim"]:
        """At every output position ``n`` (predicting ``a_(n+1)`` from ``a_0 .. a_n``), the next
        term under the family's recurrence fitted to the terms seen so far (:meth:`fit`); NaN
        where those terms give no equation yet (``n < n_initial``); exact (on noise-free terms)
        from :attr:`first_exact` on. Float64."""
        out = torch.full(terms.shape, math.nan, dtype=torch.float64)
        k = self.n_initial
        for n in range(k, terms.shape[-2]):
            seen = terms[..., : n + 1, :].double()
            coefs, d = self.fit(seen)
            out[..., n, :] = self.next_term(seen[..., -k:, :], coefs, d)
        return out
