"""Claim verdicts follow the configured criteria, and a claim that fails says so."""

import math

import pandas as pd
import pytest
import yaml
from conftest import REPO

from affine_icl.claims import (
    CLAIMS,
    DIFFERS,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    claims_table,
    describe,
    to_markdown,
    verdict,
)

CRITERIA = yaml.safe_load((REPO / "config.yaml").read_text())["claims"]


@pytest.mark.parametrize(
    "value,criterion,expected",
    [
        (1e-4, {"at_most": 2e-4, "differs_up_to": 1e-3}, REPRODUCED),
        (5e-4, {"at_most": 2e-4, "differs_up_to": 1e-3}, DIFFERS),
        (5e-3, {"at_most": 2e-4, "differs_up_to": 1e-3}, NOT_REPRODUCED),
        (7, {"at_least": 7, "differs_down_to": 4}, REPRODUCED),
        (5, {"at_least": 7, "differs_down_to": 4}, DIFFERS),
        (1, {"at_least": 7, "differs_down_to": 4}, NOT_REPRODUCED),
        (-1, {"at_least": 0}, NOT_REPRODUCED),
        (0.83, {"within": [0.78, 0.88], "differs_within": [0.65, 1.0]}, REPRODUCED),
        (0.7, {"within": [0.78, 0.88], "differs_within": [0.65, 1.0]}, DIFFERS),
        (0.3, {"within": [0.78, 0.88], "differs_within": [0.65, 1.0]}, NOT_REPRODUCED),
        (math.nan, {"at_least": 0}, NOT_MEASURABLE),
    ],
)
def test_verdicts(value, criterion, expected):
    assert verdict(value, criterion) == expected


def test_criterion_descriptions():
    assert (
        describe({"at_most": 2e-4, "differs_up_to": 1e-3})
        == "<= 0.0002 (differs in degree if <= 0.001)"
    )
    assert describe({"within": [2.1, 2.5]}) == "in [2.1, 2.5]"


def test_every_claim_has_a_default_criterion():
    assert {c.id for c in CLAIMS} == set(CRITERIA)


def synthetic_tables(l2_eigen=-0.9):
    heads = pd.DataFrame(
        [
            {
                "layer": l,
                "head": h,
                "previous_token_score": 0.9 if l == 0 else 0.1,
                "key1_score": 0.8 if l == 1 else 0.1,
                "same_parity_alternating": 0.9,
                "same_parity_non_alternating": 0.55,
                "eigenvalue_score": l2_eigen if l == 2 else 0.5,
                "qk_identity_d_model": 0.6 if l == 2 else 0.0,
                "ov_effective_rank": 2.0,
            }
            for l in range(3)
            for h in range(8)
        ]
    )
    attribution = pd.DataFrame(
        [
            {
                "layer": l,
                "head": h,
                "position": p,
                "variant": "target",
                "attribution": {0: 1.0, 1: 0.01, 2: -0.5}[l],
            }
            for l in range(3)
            for h in range(8)
            for p in range(14)
        ]
    )
    regressions = pd.DataFrame(
        {
            "source": ["residual"] * 2 + ["random"] * 2,
            "r2": [0.83, 0.83, 0.6, 0.6],
            "slope": [2.3, 2.3, 1.0, 1.0],
        }
    )
    return {
        "train_log": pd.DataFrame({"heldout_mse": [1e-2, math.nan, 1e-4]}),
        "head_scores": heads,
        "head_attribution": attribution,
        "ov_regressions": regressions,
        "embedding_span": pd.DataFrame({"share_outside": [0.84]}),
        "mean_ablation": pd.DataFrame({"ratio": [1.1, 2.0]}),
        "qk_intervention": pd.DataFrame({"n_heads": [5], "ratio": [1.0]}),
        "mlp_attribution": pd.DataFrame(
            {"variant": "target", "position": range(14), "attribution": [0.1] * 14}
        ),
        "residual_after_layer0": pd.DataFrame(
            {"series": ["decoded residual after layer 0"], "cosine_to_target": [0.8]}
        ),
        "residual_shape": pd.DataFrame(
            {
                "compared_with": [
                    "a_n + 0.10 a_(n-1) (measured in Figure 8)",
                    "a_n + 2.30 a_(n-1) (the paper's)",
                    "true a_(n+1)",
                ],
                "alpha": [0.1, 2.3, math.nan],
                "mean_correlation": [0.1, 0.9, 0.8],
            }
        ),
    }


PARAMS = {
    "previous_token_threshold": 0.5,
    "key1_threshold": 0.5,
    "qk_identity_threshold": 0.3,
    "negative_eigenvalue_threshold": 0.0,
    "loss_from_index": 2,
}


def test_a_run_matching_the_paper_reproduces_everything():
    table = claims_table(synthetic_tables(), CRITERIA, PARAMS)
    assert list(table["claim_id"]) == [c.id for c in CLAIMS]
    assert (table["verdict"] == REPRODUCED).all(), table[table["verdict"] != REPRODUCED]
    assert "| claim_id |" in to_markdown(table)


def test_a_claim_that_does_not_hold_says_so():
    table = claims_table(synthetic_tables(l2_eigen=0.4), CRITERIA, PARAMS).set_index("claim_id")
    assert table.loc["layer2_negative_copying", "measured"] == 0
    assert table.loc["layer2_negative_copying", "verdict"] == NOT_REPRODUCED


def test_missing_criterion_is_an_error():
    with pytest.raises(KeyError, match="no criterion configured for final_mse"):
        claims_table(
            synthetic_tables(), {k: v for k, v in CRITERIA.items() if k != "final_mse"}, PARAMS
        )


def test_layer0_shape_reads_the_row_of_the_papers_alpha():
    tables = synthetic_tables()
    shape = tables["residual_shape"]
    # rows in another order, and labelled differently: the claim goes by the alpha value
    tables["residual_shape"] = shape.iloc[::-1].assign(compared_with="relabelled")
    table = claims_table(tables, CRITERIA, PARAMS).set_index("claim_id")
    assert table.loc["layer0_shape", "measured"] == 0.9
    tables["residual_shape"] = shape[shape["alpha"] != 2.3]
    with pytest.raises(ValueError, match="no row compares with alpha 2.3"):
        claims_table(tables, CRITERIA, PARAMS)


def test_the_claims_table_quotes_the_papers_values():
    table = claims_table(synthetic_tables(), CRITERIA, PARAMS).set_index("claim_id")
    assert table.loc["final_mse", "paper"] == "1e-4"
    assert table.loc["layer0_previous_token_heads", "paper"] == "7 of 8 heads"
    assert table.loc["layer0_ov_r2", "paper"] == "R^2 0.83"
    assert table.loc["ov_r2_gap", "paper"] == "0.832 vs 0.598 (gap 0.234)"
    assert table.loc["outside_embedding_share", "claim"].startswith("84.15% of layer-0 OV")
    assert table.loc["layer1_mean_ablation", "paper"] == "ratio 2"
    assert table.loc["layer2_qk_identity", "paper"] == "heads 0-4 (5 of 8)"
    assert table.loc["layer0_shape", "measured_as"].endswith(
        "a_n + 2.3 a_(n-1) (the paper's alpha)"
    )
