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

Each family is one class, a :class:`~affine_icl.tasks.base.Task` (one module each:
:mod:`.affine`, :mod:`.linear`, :mod:`.diagonal`, :mod:`.polynomial`) that holds everything the
string ``data.task`` used to select: how its sequences are drawn (coefficients, the next term,
redrawing), its least-squares fit, identifiability (``n_initial``, ``first_exact``), its
recurrence in words, its label, whether its sequences alternate as a whole, and the claims it
predicts. :func:`task_of` turns the config's string (or a
:class:`~affine_icl.config.DataConfig`) into that object; nothing outside this package compares
``data.task`` with a family's name.

Division by ``s`` keeps every family a recurrence of its kind: the normalised sequence
satisfies it with ``d / s`` and, for the polynomial, ``c_j s^(j-1)``
(:meth:`~affine_icl.tasks.base.Task.normalised_coefs`). The affine family draws its numbers in
the order the sampler always has (initial term, ``d``, ``c``), so its data are unchanged bit for
bit. The other families draw again every sequence with a raw term that is not finite, and the
polynomial every one with a raw term outside ``[-POLYNOMIAL_BOUND, POLYNOMIAL_BOUND]``.

:meth:`~affine_icl.tasks.base.Task.least_squares` is each family's own solver: it fits the
family's unknowns to the terms seen so far and predicts the next one, exactly where the terms
identify them (the floor a model can reach on noise-free data, as Garg et al. compare
transformers with least squares).

The functions below (:func:`n_initial`, :func:`describe`, :func:`label`,
:func:`least_squares`) are the task's answers for a ``DataConfig``, for callers that hold one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from jaxtyping import Float
from torch import Tensor

from ..config import DataConfig, data_config, run_config
from .affine import Affine
from .base import MAX_ROUNDS, TASKS, Task, uniform
from .diagonal import Diagonal
from .linear import Linear
from .polynomial import POLYNOMIAL_BOUND, Polynomial

__all__ = [
    "MAX_ROUNDS",
    "POLYNOMIAL_BOUND",
    "TASKS",
    "Affine",
    "Diagonal",
    "Linear",
    "Polynomial",
    "Task",
    "describe",
    "families_predicting",
    "label",
    "least_squares",
    "n_initial",
    "population_key",
    "task_of",
    "uniform",
]


def task_of(cfg: DataConfig | str) -> Task:
    """The family of ``cfg`` (its ``task``, with its settings), or of the name ``cfg`` (with
    the default settings: enough for what does not depend on them, e.g. ``predicted_claims``)."""
    cfg = DataConfig(task=cfg) if isinstance(cfg, str) else cfg
    if cfg.task not in TASKS:
        raise ValueError(f"data.task: {cfg.task!r} is not one of {sorted(TASKS)}")
    return TASKS[cfg.task](cfg)


def families_predicting(claim_id: str) -> tuple[str, ...]:
    """The families whose ``predicted_claims`` name ``claim_id``, in :data:`TASKS` order; empty
    for a claim of every family. A claim applies to a run of ``task`` when this is empty or
    ``claim_id in task_of(task).predicted_claims``."""
    return tuple(name for name, cls in TASKS.items() if claim_id in cls.predicted_claims)


def n_initial(cfg: DataConfig) -> int:
    """Random initial terms per sequence (``k`` for the linear family, else 1)."""
    return task_of(cfg).n_initial


def describe(cfg: DataConfig) -> str:
    """The family in words, e.g. ``linear (order 2)``."""
    return task_of(cfg).describe


def label(cfg: DataConfig) -> str:
    """A short filesystem-safe name of the family: ``affine``, ``linear2``, ``polynomial3``."""
    return task_of(cfg).label


def least_squares(
    cfg: DataConfig, terms: Float[Tensor, "batch T dim"]
) -> Float[Tensor, "batch T dim"]:
    """The next terms under the family's recurrence fitted in context
    (:meth:`~affine_icl.tasks.base.Task.least_squares`)."""
    return task_of(cfg).least_squares(terms)


def population_key(config: Mapping[str, Any], run: str) -> str | None:
    """Where run ``run``'s evaluation population lives: ``None`` for the shared one
    (``results/data/eval_population.parquet``: the config's own ``data`` section, affine task),
    else ``<label>-<8 hex digits of its data settings>``, under ``results/data/``: runs with the
    same data settings share it, and the affine default keeps its files where they are."""
    data = run_config(config, run).data
    task = task_of(data)
    if data == data_config(config) and task.paper:
        return None
    blob = json.dumps(data.identity(), sort_keys=True, default=list).encode()
    return f"{task.label}-{hashlib.sha256(blob).hexdigest()[:8]}"
