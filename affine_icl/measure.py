"""The tables a run is measured by, each computed in one place.

Every claim (:mod:`affine_icl.claims`) and the figures of its analyses read a run's tables: its
heads' scores against chance, the direct attributions, the layer-0 OV fits, the ablations. Each
table is one :class:`Table` of :data:`TABLES`: a function of the run's folded model, analysis
population, activation cache and settings (:class:`RunInputs`), the other tables it is computed
from (``needs``), and where it is written under the run's directory. The rules that write the
tables (``workflow/rules/measure.smk``: one job per table and run, its inputs and params derived
from the entry), the claims rule that reads them, and the claims over training
(:mod:`affine_icl.over_training`, every weights snapshot, in memory) all go through
:func:`run_tables`, so the same arguments make the same table everywhere.

Adding a table: one entry here (its analysis function lives in :mod:`affine_icl.analysis`); the
rule, its inputs and the claims' access to it follow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import pandas as pd
from torch import Tensor

from .analysis.attribution import head_attribution_table, mlp_attribution_table
from .analysis.heads import COLUMNS as HEAD_SCORE_COLUMNS
from .analysis.heads import head_scores_table
from .analysis.interventions import (
    mean_ablation_table,
    qk_intervention_heads,
    qk_intervention_table,
)
from .analysis.ov import layer0_ov_regressions, outside_embedding_share
from .analysis.population import Population
from .analysis.residual import decoded_after_layer0_summary, shape_alphas, shape_correlations
from .config import RunAnalysis
from .model import VectorTransformer
from .tasks import n_initial


@dataclass(frozen=True)
class RunInputs:
    """What a run's tables are computed from: the folded model, the analysis population, the
    activation cache over it (hook name -> tensor; None for a table that reads none), what the
    run is measured with, the weights as trained (before LayerNorm folding) where a table
    reads them, and the model's matrix-score nulls where they were computed beforehand
    (:func:`~affine_icl.analysis.chance.matrix_score_nulls` of several weights snapshots at
    once: the claims over training)."""

    model: VectorTransformer
    pop: Population
    cache: Mapping[str, Tensor] | None
    settings: RunAnalysis
    unfolded: VectorTransformer | None = None
    nulls: pd.DataFrame | None = None


#: ``compute(run, tables)``: one table from the run and the tables it ``needs``.
Compute = Callable[[RunInputs, Mapping[str, pd.DataFrame]], pd.DataFrame]


@dataclass(frozen=True)
class Table:
    """One table of a run: ``name`` (how the claims read it), ``path`` (under the run's
    directory), ``compute``, and what it is computed from: the activation cache ``families`` it
    reads (``layers``: of which layers; None, all), the other tables it ``needs``, the
    ``analysis`` settings it reads (``settings``: a changed one reruns it, another does not), and
    whether it reads the ``unfolded`` weights. ``about``: what it holds, in one line;
    ``columns``: the columns it has (at least), which the claims and figures read by name."""

    name: str
    path: str
    compute: Compute
    about: str
    columns: tuple[str, ...]
    families: tuple[str, ...] = ()
    layers: tuple[int, ...] | None = None
    needs: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    unfolded: bool = False


def _head_scores(run: RunInputs, tables) -> pd.DataFrame:
    a = run.settings.analysis
    return head_scores_table(
        run.model,
        run.cache,
        run.pop.c,
        a.pick_c_threshold,
        null_draws=a.null_draws,
        seed=a.seed,
        # a linear task of order k: the mass on the k previous vectors too
        offsets=n_initial(run.settings.data),
        nulls=run.nulls,
    )


def _ov_regressions(run: RunInputs, tables) -> pd.DataFrame:
    return layer0_ov_regressions(
        run.model,
        run.cache,
        seed=run.settings.analysis.seed,
        inputs=run.pop.inputs,
        unfolded=run.unfolded,
    )


def _mean_ablation(run: RunInputs, tables) -> pd.DataFrame:
    pop = run.pop
    table = mean_ablation_table(
        run.model,
        pop.inputs,
        pop.targets,
        layer=1,
        loss_from=run.settings.loss_from_index,
        cache=run.cache,
    )
    return table.assign(n_sequences=len(pop))


def _qk_intervention(run: RunInputs, tables) -> pd.DataFrame:
    heads, reason = qk_intervention_heads(
        tables["head_scores"], run.settings.analysis.qk_identity_min_z
    )
    pop = run.pop
    table = qk_intervention_table(
        run.model,
        pop.inputs,
        pop.targets,
        heads,
        run.settings.loss_from_index,
        seed=run.settings.analysis.seed,
        cache=run.cache,
    )
    return table.assign(picked_by=reason, n_sequences=len(pop))


def _residual_after_layer0(run: RunInputs, tables) -> pd.DataFrame:
    pop = run.pop
    return decoded_after_layer0_summary(
        run.model, run.cache, pop.inputs, pop.targets, run.settings.loss_from_index
    )


def _residual_shape(run: RunInputs, tables) -> pd.DataFrame:
    pop = run.pop
    alphas = shape_alphas(tables["ov_regressions"])
    return shape_correlations(run.model, run.cache, pop.inputs, pop.targets, alphas)


#: Every table of a run, each after the tables it needs.
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "head_scores",
            "analysis/head_scores.csv",
            _head_scores,
            "every head's attention, OV and QK scores against chance",
            tuple(HEAD_SCORE_COLUMNS),
            families=("pattern",),
            settings=("pick_c_threshold", "null_draws", "seed"),
        ),
        Table(
            "head_attribution",
            "figures/fig07_head_attribution.csv",
            lambda run, tables: head_attribution_table(
                run.model, run.cache, run.pop.inputs, run.pop.targets
            ),
            "direct attribution of every head (Figure 7)",
            ("layer", "head", "component", "position", "variant", "attribution"),
            families=("head_result",),
        ),
        Table(
            "ov_regressions",
            "figures/fig08_layer0_ov.csv",
            _ov_regressions,
            "the layer-0 OV fit per vector, residual and random, in five readings (Figure 8)",
            ("reading", "source", "vector", "slope", "intercept", "r2", "r2_chance"),
            families=("resid", "head_result"),
            layers=(0,),
            settings=("seed",),
            unfolded=True,
        ),
        Table(
            "embedding_span",
            "figures/embedding_span.csv",
            lambda run, tables: outside_embedding_share(run.model, run.cache),
            "the share of layer-0 OV output outside span(W_E) (section 4.4)",
            ("layer", "vector", "share_outside", "embedding_rank", "chance_share"),
            families=("resid",),
            layers=(0,),
        ),
        Table(
            "mean_ablation",
            "figures/mean_ablation_layer1.csv",
            _mean_ablation,
            "the MSE with layer-1 heads mean-ablated, one at a time and all (section 4.5)",
            ("layer", "ablated", "mse_before", "mse_after", "ratio", "n_sequences"),
            families=("resid",),  # the residual entering layer 1: layer 0 is not run again
            layers=(1,),
        ),
        Table(
            "qk_intervention",
            "figures/qk_intervention.csv",
            _qk_intervention,
            "the MSE with layer-2 QK replaced by a pseudo-inverse projection (section 4.6)",
            ("scale", "heads", "n_heads", "mse_before", "mse_after", "ratio", "picked_by"),
            families=("resid",),  # the residual entering layer 2: layers 0-1 are not run again
            layers=(2,),
            needs=("head_scores",),
            settings=("qk_identity_min_z", "seed"),
        ),
        Table(
            "mlp_attribution",
            "figures/fig16_mlp_attribution.csv",
            lambda run, tables: mlp_attribution_table(
                run.model, run.cache, run.pop.inputs, run.pop.targets
            ),
            "direct attribution of every MLP (Figure 16)",
            ("layer", "component", "position", "variant", "attribution"),
            families=("mlp_out",),
        ),
        Table(
            "residual_after_layer0",
            "analysis/residual_after_layer0.csv",
            _residual_after_layer0,
            "the residual after layer 0, decoded, against a_(n+1) (Figure 14)",
            ("series", "position", "cosine_to_target"),
            families=("resid",),
        ),
        Table(
            "residual_shape",
            "analysis/residual_shape.csv",
            _residual_shape,
            "its correlation with a_n + alpha a_(n-1) (Figure 17)",
            ("compared_with", "alpha", "mean_correlation"),
            families=("resid",),
            needs=("ov_regressions",),
        ),
    )
}


def check_columns(
    name: str, table: pd.DataFrame, path: object = None, rule: str | None = None
) -> None:
    """Refuse a table ``name`` read from ``path`` that lacks a column its entry declares: one
    written by an older version of the code, named with ``rule``, the rule that rebuilds it
    (default ``measure_<name>``)."""
    missing = [c for c in TABLES[name].columns if c not in table.columns]
    if missing:
        raise ValueError(
            f"{path or name} lacks {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more columns" if len(missing) > 3 else "")
            + f": it was written by an older version of the code; rebuild it with "
            f"`snakemake --forcerun {rule or f'measure_{name}'}`"
        )


def run_tables(
    run: RunInputs,
    names: Iterable[str] | None = None,
    have: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, pd.DataFrame]:
    """The tables ``names`` (default: every one of :data:`TABLES`) of ``run``, by name, each
    computed after those it needs; ``have``: tables already at hand (read from their files),
    used instead of computed. Returns the requested tables only."""
    wanted = list(TABLES) if names is None else list(names)
    unknown = [n for n in wanted if n not in TABLES]
    if unknown:
        raise KeyError(f"no table {unknown[0]!r}; the tables are {', '.join(TABLES)}")
    done: dict[str, pd.DataFrame] = dict(have or {})

    def make(name: str) -> pd.DataFrame:
        if name not in done:
            table = TABLES[name]
            done[name] = table.compute(run, {n: make(n) for n in table.needs})
        return done[name]

    return {name: make(name) for name in wanted}
