"""Beyond the paper, known answers: the in-context baselines, the k-previous-vectors score and
its chance level, and the claims that apply to one task family only."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from affine_icl.analysis.attention import offsets_scores, previous_token_scores
from affine_icl.analysis.baselines import baseline_predictions, mse_by_position, trained_mse
from affine_icl.analysis.chance import uniform_offsets_share
from affine_icl.claims.registry import judged_claims, listed_claims
from affine_icl.claims.table import claims_table
from affine_icl.claims.verdicts import NOT_APPLICABLE
from affine_icl.config import DataConfig, RunAnalysis
from affine_icl.data import sample_batch


def test_each_baseline_is_exact_where_its_rule_is_the_recurrence():
    cfg = DataConfig(vector_dim=5)
    d = torch.randn(3, 1, 5)
    n = torch.arange(8.0)[None, :, None]
    arithmetic = torch.randn(3, 1, 5) + n * d  # c = 1: linear extrapolation is exact
    constant = torch.randn(3, 1, 5).expand(3, 8, 5)  # repeat last is exact
    for terms, exact in ((arithmetic, "linear extrapolation"), (constant, "repeat last")):
        predicted = baseline_predictions(cfg, terms[:, :-1])
        table = mse_by_position(predicted, terms[:, 1:], loss_from=2)
        errors = table[table["predictor"] == exact].set_index("position")["mse"]
        assert errors.loc[1:].max() < 1e-10, exact
    batch = sample_batch(cfg, 50, 10, torch.Generator().manual_seed(0))
    table = mse_by_position(baseline_predictions(cfg, batch.inputs), batch.targets, loss_from=2)
    lstsq = table[table["predictor"] == "least squares"].set_index("position")["mse"]
    assert math.isnan(lstsq[0])  # no equation from a_0 alone
    assert lstsq.loc[2:].max() < 1e-9  # a_3 on: the affine recurrence is identified
    others = table[table["predictor"] == "repeat last"]["mse"]
    assert others.min() > 1e-3  # a real sequence is not constant
    assert trained_mse(table)["least squares"] < 1e-9
    assert list(table.loc[table["trained"], "position"].unique()) == list(range(2, 10))


def test_mse_by_position_is_the_mean_square_over_sequences_and_components():
    targets = torch.zeros(2, 3, 4)
    predicted = torch.zeros(2, 3, 4)
    predicted[0, 1, :2] = 2.0  # error 4 on 2 of 8 values at position 1
    table = mse_by_position({"model": predicted}, targets, loss_from=1)
    assert table.set_index("position")["mse"].tolist() == [0.0, 1.0, 0.0]
    assert trained_mse(table)["model"] == pytest.approx(0.5)


def test_the_k_previous_vectors_score_of_a_planted_head_and_its_chance():
    n, pos = 4, 6
    pattern = torch.zeros(n, 2, pos, pos)
    pattern[:, :, 0, 0] = 1.0
    pattern[:, :, 1, 0] = 1.0
    for q in range(2, pos):  # head 0: half on q-1, half on q-2; head 1: all on itself
        pattern[:, 0, q, q - 1] = pattern[:, 0, q, q - 2] = 0.5
    for q in range(1, pos):
        pattern[:, 1, q] = 0.0
        pattern[:, 1, q, q] = 1.0
    cache = {"blocks.0.attn.hook_pattern": pattern}
    two = offsets_scores(cache, 1, 2).set_index("head")["score"]
    assert two[0] == pytest.approx(1.0) and two[1] == pytest.approx(0.0)
    one = offsets_scores(cache, 1, 1).set_index("head")["score"]
    assert one.tolist() == pytest.approx(previous_token_scores(cache, 1)["score"].tolist())
    assert uniform_offsets_share(6, 2) == pytest.approx(np.mean([2 / 3, 2 / 4, 2 / 5, 2 / 6]))


def _tables(task_claim_values):
    """Minimal claim tables; every paper measurement reads some of them (values arbitrary)."""
    heads = pd.DataFrame(
        {
            "layer": np.repeat([0, 1, 2], 4),
            "head": np.tile(range(4), 3),
            **{c: 1.0 for c in ["previous_token_score", "previous_token_ratio", "offsets_score"]},
            "offsets_ratio": task_claim_values,
            "offsets_chance": 0.25,
            **{c: 0.5 for c in ["key1_score", "key1_ratio", "checkerboard_difference"]},
        }
    )
    return heads


def test_claims_of_one_family_are_listed_and_judged_for_its_runs_only():
    affine = [c.id for c in listed_claims("affine")]
    assert "layer2_checkerboard" in affine and "linear_offset_heads" not in affine
    linear = [c.id for c in listed_claims("linear")]
    assert linear[-1] == "linear_offset_heads" and "diagonal_no_checkerboard" not in linear
    assert "layer2_checkerboard" in linear  # listed, as not applicable ...
    assert "layer2_checkerboard" not in [c.id for c in judged_claims("linear")]  # ... not judged
    # the table of a linear run: the checkerboard not applicable, the offset heads counted
    heads = _tables([3.0, 3.0, 1.0, 0.5] + [1.0] * 8)
    tables = {"head_scores": heads}
    params = RunAnalysis(data=DataConfig(task="linear", order=2))
    criteria = {"linear_offset_heads": {"at_least": 2, "differs_down_to": 1}}
    only = [c for c in judged_claims("linear") if c.id == "linear_offset_heads"]
    row = claims_table_for(only, tables, criteria, params)
    assert row["measured"] == 2 and row["verdict"] == "reproduced" and row["chance"] == 0.25
    checker = claims_table_for(
        [c for c in listed_claims("linear") if c.id == "layer2_checkerboard"], tables, {}, params
    )
    assert checker["verdict"] == NOT_APPLICABLE and math.isnan(checker["measured"])


def claims_table_for(claims, tables, criteria, params):
    """claims_table restricted to ``claims`` (the others need tables this test does not build)."""
    import affine_icl.claims.registry as module

    saved = module.CLAIMS
    module.CLAIMS = tuple(claims)
    try:
        table = claims_table(tables, criteria, params)
    finally:
        module.CLAIMS = saved
    assert len(table) == 1
    return table.iloc[0]
