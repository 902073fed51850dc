"""A run's tables (affine_icl/measure.py): each computed from what its entry declares and no
more, in the order its needs ask, the same from a Parquet cache of its declared families as from
the whole cache in memory."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from test_model import random_model

from affine_icl.activations import activation_cache, load_activation_cache, write_activation_cache
from affine_icl.analysis.population import Population
from affine_icl.config import AnalysisConfig, ModelConfig, RunAnalysis
from affine_icl.measure import TABLES, RunInputs, check_columns, run_tables
from affine_icl.model import fold_weights, save_weights
from affine_icl.over_training import snapshot_tables, tables_at

CFG = ModelConfig(d_vocab=6, d_model=32, d_head=8, n_heads=4, d_mlp=64, n_layers=3, n_ctx=16)
N, L = 24, 8
SETTINGS = RunAnalysis(AnalysisConfig(null_draws=4, seed=3), loss_from_index=2)


class Undeclared:
    """An analysis setting a table does not declare: any use of it raises (arithmetic,
    comparison, conversion), so a table that reads it fails here."""

    def __repr__(self) -> str:
        return "<undeclared setting>"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    gen = torch.Generator().manual_seed(4)
    unfolded = random_model(CFG, seed=5)
    model = fold_weights(unfolded)
    inputs = torch.randn(N, L, CFG.d_vocab, generator=gen)
    targets = torch.randn(N, L, CFG.d_vocab, generator=gen)
    c = torch.linspace(-2, 2, N)
    pop = Population(inputs, targets, c, np.arange(N))
    where = tmp_path_factory.mktemp("cache")
    write_activation_cache(model, inputs, targets, np.arange(N), where, {"run": "t"}, 8)
    memory = RunInputs(model, pop, activation_cache(model, inputs), SETTINGS, unfolded)
    return memory, where


def test_every_table_reads_only_what_it_declares(run):
    """From the Parquet cache of its declared families and layers only, with every setting it
    does not declare made unusable, each table is what the whole in-memory cache gives."""
    memory, where = run
    with pytest.raises(TypeError):
        Undeclared() >= 2.0  # noqa: B015 - what a table reading an undeclared setting does
    full = run_tables(memory)
    assert list(full) == list(TABLES)
    for name, table in TABLES.items():  # the columns each entry declares, the claims read
        assert set(table.columns) <= set(full[name].columns), name
    for name, table in TABLES.items():
        undeclared = {
            f.name: Undeclared()
            for f in dataclasses.fields(AnalysisConfig)
            if f.name not in table.settings
        }
        settings = dataclasses.replace(
            SETTINGS, analysis=dataclasses.replace(SETTINGS.analysis, **undeclared)
        )
        cache = (
            load_activation_cache(where, memory.model, layers=table.layers, families=table.families)
            if table.families
            else None
        )
        restricted = RunInputs(
            memory.model,
            memory.pop,
            cache,
            settings,
            memory.unfolded if table.unfolded else None,
        )
        needed = {n: full[n] for n in table.needs}
        got = table.compute(restricted, needed)
        pd.testing.assert_frame_equal(got, full[name], rtol=1e-5, atol=1e-6, obj=name)


def test_tables_come_after_what_they_need_and_take_those_at_hand(run):
    memory, _ = run
    order = list(TABLES)
    for name, table in TABLES.items():
        assert all(order.index(n) < order.index(name) for n in table.needs), name
    # the QK intervention picks its heads from the head scores it is given
    scores = run_tables(memory, ["head_scores"])["head_scores"]
    none_pass = scores.assign(qk_identity_d_model_z=-1.0)
    picked = run_tables(memory, ["qk_intervention"], have={"head_scores": none_pass})
    assert set(picked) == {"qk_intervention"}
    assert "highest" in picked["qk_intervention"]["picked_by"].iloc[0]
    with pytest.raises(KeyError, match="no table 'head_score'"):
        run_tables(memory, ["head_score"])


def test_a_table_without_a_declared_column_is_refused_with_the_rule_that_rebuilds_it(run):
    memory, _ = run
    span = run_tables(memory, ["embedding_span"])["embedding_span"]
    check_columns("embedding_span", span)
    with pytest.raises(
        ValueError, match=r"old.csv lacks chance_share: .*--forcerun measure_embedding_span"
    ):
        check_columns("embedding_span", span.drop(columns="chance_share"), "old.csv")
    with pytest.raises(ValueError, match=r"--forcerun measure_over_training`"):
        check_columns(
            "embedding_span", span.drop(columns="chance_share"), rule="measure_over_training"
        )


def test_every_figure_that_draws_a_table_names_one_of_them():
    from affine_icl.figures.registry import FIGURES

    drawn = {f.rule: f.draws for f in FIGURES.values() if f.draws}
    assert set(drawn.values()) <= set(TABLES)
    assert drawn["fig07_head_attribution"] == "head_attribution"


def test_the_snapshots_tables_are_each_models_own_with_its_step(run, tmp_path):
    """measure_over_training's tables (snapshot_tables): for each weights file, every table
    as run_tables makes it for that model alone, under its step; nulls shared across the
    snapshots change nothing."""
    memory, _ = run
    other = random_model(CFG, seed=6)
    weights = {}
    for step, model in ((300, other), (100, memory.unfolded)):
        weights[step] = tmp_path / f"step-{step}.safetensors"
        save_weights(model, weights[step], {"step": str(step)})
    over = snapshot_tables(weights, memory.pop, SETTINGS, progress=False)
    assert set(over) == set(TABLES)
    for step, unfolded in ((100, memory.unfolded), (300, other)):
        folded = fold_weights(unfolded)
        cache = activation_cache(folded, memory.pop.inputs)
        alone = RunInputs(folded, memory.pop, cache, SETTINGS, unfolded)
        expected = run_tables(alone)
        at_step = tables_at(over, step)
        for name in TABLES:
            pd.testing.assert_frame_equal(
                at_step[name], expected[name], check_exact=True, obj=f"{name} at {step}"
            )
    assert list(over["head_scores"]["step"].unique()) == [100, 300]  # steps in order
