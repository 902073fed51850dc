"""Margins: planted measurements whose verdict flips at a known strictness factor, found by
bisection to 1e-3; chance-level criteria flagged; the other readings beside the literal one."""

import math

import pandas as pd
import pytest
from test_claims import CRITERIA, PARAMS, synthetic_tables

from affine_icl.claims.table import claims_table
from affine_icl.claims.verdicts import (
    DIFFERS,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    verdict,
)
from affine_icl.margins import (
    NO_MARGIN,
    SEARCH,
    margin,
    margin_across,
    margin_text,
    strict_criterion,
)
from affine_icl.paper import PAPER, excess_over_random, random_direction_share
from affine_icl.render import readable


def planted(value, criterion, chance):
    """The verdict of a fixed ``value`` under ``criterion`` made f times stricter."""
    return lambda f: verdict(value, strict_criterion(criterion, f, chance))


def test_an_effect_claim_holds_until_its_bound_passes_the_value():
    """0.7 against >= 0.5 (chance 0): the bound 0.5 f reaches 0.7 at f = 1.4; the differs
    bound 0.2 f at f = 3.5."""
    found = margin(planted(0.7, {"at_least": 0.5, "differs_down_to": 0.2}, 0.0))
    assert found.verdict == REPRODUCED
    assert found.strictest == pytest.approx(1.4, abs=1e-3)
    assert found.loosest == SEARCH[0]  # looser never takes a reproduced verdict away
    assert found.text == "holds up to x1.4 stricter"
    # the same value is "differs in degree" from x1.4 to x3.5
    differs = [
        f
        for f in (1.5, 2.0, 3.0, 3.4)
        if planted(0.7, {"at_least": 0.5, "differs_down_to": 0.2}, 0.0)(f) == DIFFERS
    ]
    assert differs == [1.5, 2.0, 3.0, 3.4]


def test_a_failing_verdict_names_how_much_looser_would_change_it():
    """0.1 against >= 0.5 (differs >= 0.2), chance 0: differs once 0.2 f <= 0.1, f = 0.5."""
    found = margin(planted(0.1, {"at_least": 0.5, "differs_down_to": 0.2}, 0.0))
    assert found.verdict == NOT_REPRODUCED
    assert found.loosest == pytest.approx(0.5, abs=1e-3)
    assert found.strictest == SEARCH[1]
    assert found.text.startswith("fails until x0.5 looser")


def test_a_differs_verdict_has_both_edges():
    """0.3 against >= 0.5 (differs >= 0.2), chance 0: reproduced below f = 0.6, not
    reproduced above f = 1.5."""
    found = margin(planted(0.3, {"at_least": 0.5, "differs_down_to": 0.2}, 0.0))
    assert found.verdict == DIFFERS
    assert (found.loosest, found.strictest) == (
        pytest.approx(0.6, abs=1e-3),
        pytest.approx(1.5, abs=1e-3),
    )
    assert found.text == "differs from x0.6 to x1.5"


def test_a_claim_that_an_effect_is_absent_gets_stricter_towards_chance():
    """An MSE ratio of 2 against <= 3 (chance 1, no change): chance passes, so stricter
    brings the bound to 1 + 2 / f, which reaches 2 at f = 2."""
    criterion = {"at_most": 3, "differs_up_to": 10}
    assert strict_criterion(criterion, 2.0, 1.0) == {"at_most": 2.0, "differs_up_to": 5.5}
    found = margin(planted(2.0, criterion, 1.0))
    assert found.strictest == pytest.approx(2.0, abs=1e-3)
    assert found.robust  # the same verdict at x0.5 and at x2
    assert "robust" in found.text


def test_within_bands_narrow_around_their_centre():
    """0.86 in [0.78, 0.88] (centre 0.83): holds while 0.05 / f >= 0.03, up to f = 5/3."""
    found = margin(planted(0.86, {"within": [0.78, 0.88]}, 0.83))
    assert found.strictest == pytest.approx(5 / 3, abs=1e-3)


def test_not_a_judgement_has_no_margin():
    found = margin(lambda f: NOT_MEASURABLE)
    assert math.isnan(found.loosest) and found.text == "-"


def test_margins_across_runs_are_what_every_run_with_the_verdict_shares():
    text = margin_across([REPRODUCED, REPRODUCED, DIFFERS], [0.1, 0.1, 0.7], [1.4, 2.5, 1.2])
    assert text == (
        "reproduced in 2: holds up to x1.4 stricter; differs in degree in 1: differs from x0.7 "
        "to x1.2"
    )
    assert margin_across([NOT_MEASURABLE], [math.nan], [math.nan]) == "-"
    # a judged verdict without a margin: a criterion whose bound is chance itself
    assert margin_across([REPRODUCED], [math.nan], [math.nan]) == f"reproduced in 1: {NO_MARGIN}"
    assert margin_text(REPRODUCED, 0.1, 10.0) == "holds even x10 stricter (robust)"


def test_the_margin_of_a_head_count_moves_the_threshold_that_counts_heads():
    """Layer-1 heads pay key 1 3x the uniform share; the threshold 1 + f (2 - 1) passes 3 at
    f = 2, where the count drops from 8 (>= 5: reproduced) to 0."""
    from affine_icl.sensitivity import margins_table

    table = margins_table(synthetic_tables(key1_ratio=3.0), CRITERIA, PARAMS).set_index("claim_id")
    assert table.loc["layer1_second_vector_heads", "strictest"] == pytest.approx(2.0, abs=1e-3)
    assert table.loc["layer1_second_vector_heads", "verdict"] == REPRODUCED
    # a bound at chance itself (MLP push >= 0, chance 0) has no margin, and says why
    assert math.isnan(table.loc["mlp_final_positions", "strictest"])
    assert "chance itself" in table.loc["mlp_final_positions", "margin"]


def test_a_random_directions_share_outside_a_subspace():
    """Against 200,000 draws: sqrt(1 - 40/128) = 0.829 and sd 0.035 (d_vocab 40, d_model 128)."""
    rng = __import__("numpy").random.default_rng(0)
    draws = rng.standard_normal((200_000, 128))
    share = (draws[:, 40:] ** 2).sum(1) ** 0.5 / (draws**2).sum(1) ** 0.5
    chance, sd = random_direction_share(40, 128)
    assert chance == pytest.approx(((share**2).mean()) ** 0.5, abs=1e-3)
    assert sd == pytest.approx(share.std(), rel=0.01)
    # the paper's 84.15% is a third of an sd above it: what chance gives
    assert excess_over_random(PAPER.outside_embedding_share, 40, 128) == pytest.approx(
        0.35, abs=0.01
    )


def test_the_share_outside_the_embedding_is_judged_as_an_excess_over_chance():
    """A run at the paper's share is not reproduced (+0.35 sd; criterion >= 1 sd); one 2 sd
    above a random direction is; the paper's column says its value is chance."""
    chance, sd = random_direction_share(40, 128)
    for share, expected in (
        (PAPER.outside_embedding_share, NOT_REPRODUCED),
        (chance + 2 * sd, REPRODUCED),
    ):
        tables = synthetic_tables()
        tables["embedding_span"] = pd.DataFrame(
            {"share_outside": [share], "chance_share": [chance], "chance_share_sd": [sd]}
        )
        row = (
            claims_table(tables, CRITERIA, PARAMS)
            .set_index("claim_id")
            .loc["outside_embedding_share"]
        )
        assert row["verdict"] == expected
        assert row["measured"] == pytest.approx((share - chance) / sd)
        assert row["effect"] == pytest.approx(share)
        assert "(chance)" in row["paper"] and "+0.35 sd" in row["paper"]


def test_no_reproduced_claim_passes_at_chance_without_saying_so():
    """In every table: where a measurement at chance would be reproduced, the row says so,
    and why (by design for a claim that an effect is absent)."""
    from affine_icl.sensitivity import better_readings, margins_table, other_readings

    tables = synthetic_tables()
    margins = margins_table(tables, CRITERIA, PARAMS)
    readings = better_readings(
        other_readings(tables, CRITERIA, PARAMS), margins.set_index("claim_id")["verdict"]
    )
    table = claims_table(tables, CRITERIA, PARAMS, margins, readings).set_index("claim_id")
    passes = set(table.index[table["chance_passes"]])
    # MLP push >= 0 with chance 0; mean ablation and QK intervention: no change is chance
    assert passes == {"mlp_final_positions", "layer1_mean_ablation", "qk_intervention"}
    assert "cannot tell the model from chance" in table.loc["mlp_final_positions", "chance_note"]
    assert "by design" in table.loc["qk_intervention", "chance_note"]
    shown = readable(table.reset_index()).set_index("claim_id")
    for claim in passes:
        assert "chance passes" in shown.loc[claim, "verdict's margin and chance"]
    for claim in set(table.index) - passes:
        assert "chance passes" not in shown.loc[claim, "verdict's margin and chance"]


def test_the_literal_method_and_the_reading_that_gets_closer_side_by_side():
    """All layer-1 heads ablated at once raise the MSE 20x (not reproduced); one at a time the
    median head 1.5x (reproduced): the table shows both on the claim's row."""
    from affine_icl.sensitivity import better_readings, margins_table, other_readings

    tables = synthetic_tables()
    tables["mean_ablation"] = pd.DataFrame({"ratio": [1.2, 1.5, 1.8, 20.0]})
    margins = margins_table(tables, CRITERIA, PARAMS)
    readings = better_readings(
        other_readings(tables, CRITERIA, PARAMS), margins.set_index("claim_id")["verdict"]
    )
    table = claims_table(tables, CRITERIA, PARAMS, margins, readings).set_index("claim_id")
    row = table.loc["layer1_mean_ablation"]
    assert row["verdict"] == NOT_REPRODUCED
    assert row["other_reading"] == "one head at a time: median over heads"
    assert (row["other_value"], row["other_verdict"]) == (1.5, REPRODUCED)
    shown = readable(table.reset_index()).set_index("claim_id")
    assert shown.loc["layer1_mean_ablation", "another reading the paper allows"] == (
        "one head at a time: median over heads: 1.5, reproduced (chance 1: reproduced too)"
    )
    # a claim whose literal verdict is already the paper's has no other reading to show
    assert shown.loc["final_mse", "another reading the paper allows"] == ""
