"""Task families: the paper's affine recurrence and those of its future work (``data.task``).

Every family draws a sequence ``a_0 .. a_T`` of ``D``-vectors from random initial terms, a
random offset ``d`` (entries ~ U(``init_range``)) and random coefficients (each ~
U(``c_range``)), and the sampler (:mod:`affine_icl.data`) then divides the whole sequence by
``m / U(norm_range)``, ``m`` the largest norm among its inputs, as section 3.1 does:

============  ===========================================================  ===============
task          recurrence                                                    coefficients
============  ===========================================================  ===============
affine        ``a_n = c a_(n-1) + d`` (the paper)                           ``c``: 1 scalar
linear        ``a_n = c_1 a_(n-1) + ... + c_k a_(n-k) + d``, k initial      ``k = data.order``
              terms                                                         scalars
diagonal      ``a_n = diag(c) a_(n-1) + d``: one coefficient per component  ``D`` scalars
polynomial    ``a_n = c_p a_(n-1)^p + ... + c_1 a_(n-1) + d``, elementwise  ``p = data.degree``
                                                                            scalars
============  ===========================================================  ===============

A full ``D x D`` matrix ``a_n = C a_(n-1) + d`` is not a family here: it has ``D^2 + D``
unknowns, so the ``<= 14`` terms of a sequence (``D`` equations each) cannot identify it for
``D = 40``; the diagonal family is the higher-dimensional case that a few terms do identify.

Division by ``s`` keeps every family a recurrence of its kind: the normalised sequence
satisfies it with ``d / s`` and, for the polynomial, ``c_j s^(j-1)`` (:func:`normalised_coefs`).
The affine family draws its numbers in the order the sampler always has (initial term, ``d``,
``c``), so its data are unchanged bit for bit. The other families draw again every sequence with
a raw term that is not finite, and the polynomial every one with a raw term outside
``[-POLYNOMIAL_BOUND, POLYNOMIAL_BOUND]``: a polynomial orbit that leaves a bounded region grows
doubly exponentially, so its last term would dwarf the inputs it is normalised by (with the bound
the last term's norm is at most 3x the largest input norm; the affine task's is 2x).

:func:`least_squares` is each family's own solver: it fits the family's unknowns to the terms
seen so far and predicts the next one, exactly where the terms identify them (the floor a model
can reach on noise-free data, as Garg et al. compare transformers with least squares).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .config import DataConfig, data_config, run_config

#: Each family's recurrence in one line (model cards, figure titles).
RECURRENCES = {
    "affine": "a_n = c a_(n-1) + d",
    "linear": "a_n = c_1 a_(n-1) + ... + c_k a_(n-k) + d",
    "diagonal": "a_n = diag(c) a_(n-1) + d",
    "polynomial": "a_n = c_p a_(n-1)^p + ... + c_1 a_(n-1) + d",
}

#: Raw terms beyond this magnitude make a polynomial sequence be drawn again.
POLYNOMIAL_BOUND = 100.0

#: Rounds of redrawing before the sampler gives up and names the ranges to narrow.
MAX_ROUNDS = 200


def n_initial(cfg: DataConfig) -> int:
    """Random initial terms per sequence (``k`` for the linear family, else 1)."""
    return cfg.order if cfg.task == "linear" else 1


def n_coefs(cfg: DataConfig) -> int:
    """Coefficients per sequence."""
    return {"affine": 1, "linear": cfg.order, "diagonal": cfg.vector_dim}.get(cfg.task, cfg.degree)


def _parameter(cfg: DataConfig) -> tuple[str, int] | None:
    """The family's own parameter, ``("order", k)`` or ``("degree", p)``, if it has one."""
    return {"linear": ("order", cfg.order), "polynomial": ("degree", cfg.degree)}.get(cfg.task)


def describe(cfg: DataConfig) -> str:
    """The family in words, e.g. ``linear (order 2)``."""
    parameter = _parameter(cfg)
    return f"{cfg.task} ({parameter[0]} {parameter[1]})" if parameter else cfg.task


def label(cfg: DataConfig) -> str:
    """A short filesystem-safe name of the family: ``affine``, ``linear2``, ``polynomial3``."""
    parameter = _parameter(cfg)
    return f"{cfg.task}{parameter[1]}" if parameter else cfg.task


def population_key(config: Mapping[str, Any], run: str) -> str | None:
    """Where run ``run``'s evaluation population lives: ``None`` for the shared one
    (``results/data/eval_population.parquet``: the config's own ``data`` section, affine task),
    else ``<label>-<8 hex digits of its data settings>``, under ``results/data/``: runs with the
    same data settings share it, and the affine default keeps its files where they are."""
    data = run_config(config, run).data
    if data == data_config(config) and data.task == "affine":
        return None
    blob = json.dumps(data.identity(), sort_keys=True, default=list).encode()
    return f"{label(data)}-{hashlib.sha256(blob).hexdigest()[:8]}"


def next_term(
    cfg: DataConfig,
    history: Float[Tensor, "... k dim"],
    coefs: Float[Tensor, "... m"],
    d: Float[Tensor, "... dim"],
) -> Float[Tensor, "... dim"]:
    """The term after ``history`` (its last ``n_initial(cfg)`` terms are used)."""
    prev = history[..., -1, :]
    if cfg.task == "affine":
        return coefs[..., 0, None] * prev + d
    if cfg.task == "linear":
        k = cfg.order
        lags = history[..., -k:, :].flip(-2)  # a_(n-1), ..., a_(n-k)
        return (coefs[..., :, None] * lags).sum(-2) + d
    if cfg.task == "diagonal":
        return coefs * prev + d
    powers = torch.stack([prev**j for j in range(1, cfg.degree + 1)], dim=-2)  # [..., p, D]
    return (coefs[..., :, None] * powers).sum(-2) + d


def recurrence_terms(
    cfg: DataConfig,
    initial: Float[Tensor, "... k dim"],
    coefs: Float[Tensor, "... m"],
    d: Float[Tensor, "... dim"],
    max_length: int,
) -> Float[Tensor, "... T dim"]:
    """Terms ``a_0 .. a_max_length`` (``T = max_length + 1``) from the initial terms."""
    terms = list(initial.unbind(-2))
    k = len(terms)
    for _ in range(max_length + 1 - k):
        terms.append(next_term(cfg, torch.stack(terms[-k:], dim=-2), coefs, d))
    return torch.stack(terms[: max_length + 1], dim=-2)


def normalised_coefs(cfg: DataConfig, coefs: Tensor, scale: Tensor) -> Tensor:
    """The coefficients of the recurrence the sequence divided by ``scale`` satisfies."""
    if cfg.task != "polynomial":
        return coefs
    powers = torch.arange(cfg.degree, dtype=coefs.dtype, device=coefs.device)  # j - 1
    return coefs * scale[..., None] ** powers


def summary_c(cfg: DataConfig, coefs: Tensor) -> Tensor:
    """The one number per sequence the analyses call ``c`` (Figs 5/6 pick sequences by its
    sign): the first coefficient, ``c_1`` (of ``a_(n-1)``; for the diagonal family that of the
    first component, which alternates when it is negative)."""
    return coefs[..., 0]


def _uniform(shape, bounds, generator: torch.Generator, device) -> torch.Tensor:
    lo, hi = bounds
    return torch.rand(shape, generator=generator, device=device) * (hi - lo) + lo


def _draw(cfg: DataConfig, shape: tuple[int, ...], generator, device, c=None):
    dim = cfg.vector_dim
    k = n_initial(cfg)
    initial = _uniform(
        (*shape, dim) if k == 1 else (*shape, k, dim), cfg.init_range, generator, device
    )
    if k == 1:
        initial = initial[..., None, :]
    d = _uniform((*shape, dim), cfg.init_range, generator, device)
    if c is None:
        m = n_coefs(cfg)
        coefs = _uniform(
            shape if cfg.task == "affine" else (*shape, m), cfg.c_range, generator, device
        )
    else:
        coefs = c.to(device=device, dtype=d.dtype)
    if cfg.task == "affine":
        coefs = coefs[..., None]
    return initial, coefs, d


def draw_raw(
    cfg: DataConfig,
    shape: tuple[int, ...],
    max_length: int,
    generator: torch.Generator,
    *,
    c: Tensor | None = None,
) -> tuple[Float[Tensor, "... T dim"], Float[Tensor, "... m"], Float[Tensor, "... dim"]]:
    """Raw (unnormalised) terms ``a_0 .. a_max_length``, coefficients and ``d`` of ``shape``
    sequences on ``generator``'s device. ``c`` fixes the affine coefficient (Figure 1).

    A non-affine sequence with a raw term that is not finite (or, polynomial, outside
    ``[-POLYNOMIAL_BOUND, POLYNOMIAL_BOUND]``) is drawn again, on the same generator, so the
    result is seeded; after :data:`MAX_ROUNDS` rounds the error names how many kept escaping and
    the ranges to narrow.
    """
    device = generator.device
    initial, coefs, d = _draw(cfg, shape, generator, device, c)
    raw = recurrence_terms(cfg, initial, coefs, d, max_length)
    if cfg.task == "affine":
        return raw, coefs, d
    if c is not None:
        raise ValueError("c can only be fixed for the affine task")
    total = math.prod(shape)
    bound = POLYNOMIAL_BOUND if cfg.task == "polynomial" else math.inf

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
        initial, new_coefs, new_d = _draw(cfg, (n_bad,), generator, device)
        new_raw = recurrence_terms(cfg, initial, new_coefs, new_d, max_length)
        ok = ~escaped(new_raw)
        rows = pending[ok]
        flat_raw[rows], flat_coefs[rows], flat_d[rows] = new_raw[ok], new_coefs[ok], new_d[ok]
        pending = pending[~ok]
    raise ValueError(
        f"data: {n_bad} of {total} {describe(cfg)} sequences still exceed {bound:g} within "
        f"{max_length + 1} terms after {MAX_ROUNDS} redraws; narrow data.c_range "
        f"{list(cfg.c_range)} or data.init_range {list(cfg.init_range)}"
    )


# --------------------------------------------------------------------------- least squares


def _features(cfg: DataConfig, terms: Tensor, n: int) -> Tensor:
    """The regressors of ``a_n`` for every component: ``[..., D, m]``."""
    if cfg.task == "linear":
        return terms[..., n - cfg.order : n, :].flip(-2).transpose(-1, -2)
    prev = terms[..., n - 1, :]
    if cfg.task == "polynomial":
        return torch.stack([prev**j for j in range(1, cfg.degree + 1)], dim=-1)
    return prev[..., None]  # affine (shared c) and diagonal (c per component)


def fit(
    cfg: DataConfig, terms: Float[Tensor, "batch t dim"]
) -> tuple[Float[Tensor, "batch m"], Float[Tensor, "batch dim"]]:
    """Least-squares coefficients and ``d`` of the family from the terms ``a_0 .. a_(t-1)``.

    The equations are ``a_n = f(a_(n-1), ...) . c + d`` for every ``n >= n_initial`` and every
    component. ``d`` is eliminated by centring each component over ``n``; the coefficients then
    solve one least-squares problem per sequence (per component for the diagonal family), with
    the minimum-norm solution (``gelsd``) where the terms do not determine them. Float64.
    """
    terms = terms.double()
    k, t = n_initial(cfg), terms.shape[-2]
    if t <= k:
        raise ValueError(f"{describe(cfg)}: {t} terms give no equation (need more than {k})")
    x = torch.stack([_features(cfg, terms, n) for n in range(k, t)], dim=-3)  # [B, N, D, m]
    y = terms[..., k:, :]  # [B, N, D]
    xc, yc = x - x.mean(-3, keepdim=True), y - y.mean(-2, keepdim=True)
    if cfg.task == "diagonal":  # one problem per component: [B, D, N, 1]
        sol = torch.linalg.lstsq(xc.movedim(-2, -3), yc.movedim(-1, -2)[..., None], driver="gelsd")
        coefs = sol.solution[..., 0, 0]  # [B, D]
        d = y.mean(-2) - coefs * x[..., 0].mean(-2)
    else:  # one problem per sequence: [B, N*D, m]
        b, m = x.shape[0], x.shape[-1]
        sol = torch.linalg.lstsq(xc.reshape(b, -1, m), yc.reshape(b, -1, 1), driver="gelsd")
        coefs = sol.solution[..., 0]  # [B, m]
        d = y.mean(-2) - (x.mean(-3) * coefs[:, None, :]).sum(-1)
    return coefs, d


def least_squares(
    cfg: DataConfig, terms: Float[Tensor, "batch T dim"]
) -> Float[Tensor, "batch T dim"]:
    """At every output position ``n`` (predicting ``a_(n+1)`` from ``a_0 .. a_n``), the next term
    under the family's recurrence fitted to the terms seen so far (:func:`fit`); NaN where those
    terms give no equation yet (``n < n_initial``). Float64."""
    out = torch.full(terms.shape, math.nan, dtype=torch.float64)
    k = n_initial(cfg)
    for n in range(k, terms.shape[-2]):
        seen = terms[..., : n + 1, :].double()
        coefs, d = fit(cfg, seen)
        out[..., n, :] = next_term(cfg, seen[..., -k:, :], coefs, d)
    return out
