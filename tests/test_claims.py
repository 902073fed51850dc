"""Claim verdicts follow the configured criteria, and a claim that fails says so."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from affine_icl.claims.registry import CLAIMS, listed_claims
from affine_icl.claims.table import claims_table
from affine_icl.claims.verdicts import (
    DIFFERS,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    describe,
    verdict,
)
from affine_icl.config import AnalysisConfig, RunAnalysis
from affine_icl.render import to_markdown

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


def synthetic_tables(l2_eigen=-0.9, key1_ratio=3.0):
    """Tables of a run that reproduces every claim (layer-2 eigenvalue scores and the layer-1
    heads' key-1 ratio to chance can be set)."""
    uniform = 0.2
    heads = pd.DataFrame(
        [
            {
                "layer": l,
                "head": h,
                "previous_token_score": 0.9 if l == 0 else 0.1,
                "previous_token_chance": uniform,
                "previous_token_ratio": (0.9 if l == 0 else 0.1) / uniform,
                "key1_score": key1_ratio * uniform if l == 1 else 0.1,
                "key1_chance": uniform,
                "key1_ratio": key1_ratio if l == 1 else 0.5,
                "checkerboard_difference": 0.35,
                "checkerboard_z": 20.0,
                "eigenvalue_score": l2_eigen if l == 2 else 0.5,
                "eigenvalue_score_null_mean": 0.0,
                "eigenvalue_score_z": (l2_eigen if l == 2 else 0.5) / 0.05,
                "qk_identity_d_model": 0.6 if l == 2 else 0.0,
                "qk_identity_d_model_null_mean": 0.0,
                "qk_identity_d_model_z": 0.6 / 0.02 if l == 2 else 0.0,
                "ov_effective_rank": 2.0,
                "ov_rank_ratio": 2.0 / 40,
                "ov_participation_ratio": 1.5,
                "ov_participation_ratio_null_mean": 30.0,
                "ov_sv1_energy": 0.8,
                "ov_sv1_energy_null_mean": 0.05,
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
        # 2 sd of a random direction's share above it (0.83 +- 0.035)
        "embedding_span": pd.DataFrame(
            {"share_outside": [0.9], "chance_share": [0.83], "chance_share_sd": [0.035]}
        ),
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


#: The protocol's analysis settings (2x the uniform share, z 5) and loss_from_index 2.
PARAMS = RunAnalysis(AnalysisConfig(), loss_from_index=2)


def test_a_run_matching_the_paper_reproduces_everything():
    table = claims_table(synthetic_tables(), CRITERIA, PARAMS)
    assert list(table["claim_id"]) == [c.id for c in listed_claims("affine")]
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


def test_the_sensitivity_grid_flips_exactly_at_the_planted_value():
    """Layer-1 heads pay key 1 exactly 3x the uniform share; the configured 2x counts all 8.
    A factor f asks for 1 + f (2 - 1) x uniform, so the count drops to 0 just past f = 2."""
    from affine_icl.sensitivity import AS_CONFIGURED, sensitivity_table

    factors = [0.5, 1.0, 1.9, 2.0, 2.1]
    grid = sensitivity_table(synthetic_tables(key1_ratio=3.0), CRITERIA, PARAMS, factors)
    rows = grid[(grid["claim_id"] == "layer1_second_vector_heads")]
    configured = rows[rows["definition"] == AS_CONFIGURED].set_index("factor")
    assert list(configured["threshold"]) == pytest.approx([1.5, 2.0, 2.9, 3.0, 3.1])
    assert list(configured["measured"]) == [8, 8, 8, 8, 0]
    assert list(configured["verdict"]) == [REPRODUCED] * 4 + [NOT_REPRODUCED]
    assert (configured["varied"] == "analysis.key1_min_ratio").all()
    # the former absolute definition (share >= 0.5) sees 3 x 0.2 = 0.6: it counts all 8 too
    former = rows[rows["definition"] != AS_CONFIGURED]
    assert set(former["measured"]) == {8}
    # a criterion without a knob moves its bound: the MSE ratio of the mean ablation (1.1;
    # chance 1, bound 3) is a claim that an effect is small, so chance passes its criterion
    # and asking more brings the bound closer to chance: 1 + 2 / f
    ablation = grid[
        (grid["claim_id"] == "layer1_mean_ablation") & (grid["definition"] == AS_CONFIGURED)
    ]
    assert list(ablation["threshold"]) == pytest.approx([1 + 2 / f for f in factors])
    # a claim that an effect is present moves away from chance: 0.75 of heads, chance 0.5
    share = grid[
        (grid["claim_id"] == "layer0_attribution_positive") & (grid["definition"] == AS_CONFIGURED)
    ]
    assert list(share["threshold"]) == pytest.approx([min(0.5 + f * 0.25, 1) for f in factors])


def test_sensitivity_needs_the_configured_definition():
    from affine_icl.sensitivity import sensitivity_table

    with pytest.raises(ValueError, match="must include 1"):
        sensitivity_table(synthetic_tables(), CRITERIA, PARAMS, [0.5, 2.0])


def test_stricter_criteria_stay_within_what_a_measurement_can_take():
    from affine_icl.margins import strict_criterion

    share = {"at_least": 0.75, "differs_down_to": 0.5}
    assert strict_criterion(share, 2.0, 0.5, (0, 1)) == {"at_least": 1.0, "differs_down_to": 0.5}
    assert strict_criterion(share, 0.5, 0.5, (0, 1)) == {"at_least": 0.625, "differs_down_to": 0.5}
    band = {"within": [2.1, 2.5], "differs_within": [1.5, 3.5]}
    assert strict_criterion(band, 2.0, 0.0, (-np.inf, np.inf)) == {
        "within": pytest.approx([2.2, 2.4]),
        "differs_within": pytest.approx([2.0, 3.0]),
    }


def test_the_analysis_settings_are_one_typed_object_with_config_yamls_defaults():
    from dataclasses import fields

    from affine_icl.config import ConfigError, analysis_config
    from affine_icl.sensitivity import sensitivity_table

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert analysis_config(config["analysis"]) == AnalysisConfig()
    with pytest.raises(ConfigError, match="unknown key 'null_draw'"):
        analysis_config({"null_draw": 3})
    # every claim's threshold is a field of it, and the sensitivity grid varies that field
    assert {c.knob for c in CLAIMS if c.knob} <= {f.name for f in fields(AnalysisConfig)}
    grid = sensitivity_table(synthetic_tables(key1_ratio=3.0), CRITERIA, PARAMS, [1.0, 2.0])
    key1 = grid[(grid["claim_id"] == "layer1_second_vector_heads") & (grid["factor"] == 2.0)]
    assert key1["threshold"].iloc[0] == 1 + 2 * (PARAMS.analysis.key1_min_ratio - 1)
