"""Aggregation across runs: per-claim counts, and head roles compared by rank, not index."""

import numpy as np
import pandas as pd
import pytest

from affine_icl.aggregate import (
    aggregate_claims,
    head_attribution_by_run,
    ov_fit_by_run,
    ranked_head_scores,
    verdict_settled_since,
)


def claims(values, verdicts):
    return pd.DataFrame(
        {
            "claim_id": ["a", "b"],
            "section": ["4.1", "4.2"],
            "claim": ["x", "y"],
            "paper": ["1", "2"],
            "measured": values,
            "measured_as": [np.nan, "heads"],
            "criterion": [">= 1", ">= 2"],
            "verdict": verdicts,
        }
    )


def test_claim_holds_in_k_of_n_runs():
    table = aggregate_claims(
        {
            "s0": claims([1.0, 3.0], ["reproduced", "reproduced"]),
            "s1": claims([0.5, 2.5], ["not reproduced", "reproduced"]),
            "s2": claims([np.nan, 1.0], ["not measurable", "differs in degree"]),
        }
    ).set_index("claim_id")
    assert table.loc["a", "summary"] == "holds in 1 of 3 runs"
    assert table.loc["b", "summary"] == "holds in 2 of 3 runs"
    assert table.loc["a", "mean"] == 0.75 and table.loc["b", "min"] == 1.0
    assert table.loc["b", "value s1"] == 2.5
    assert "s2: not measurable" in table.loc["a", "verdicts"]
    assert list(table["measured_as"]) == ["", "heads"]  # an empty CSV cell is not "nan"


def test_heads_are_compared_by_rank_not_index():
    a = pd.DataFrame({"layer": [2, 2, 2], "head": [0, 1, 2], "eigenvalue_score": [-0.9, 0.1, -0.5]})
    b = pd.DataFrame({"layer": [2, 2, 2], "head": [0, 1, 2], "eigenvalue_score": [0.1, -0.5, -0.9]})
    ranked = ranked_head_scores({"a": a, "b": b}, "eigenvalue_score", ascending=True)
    by_rank = ranked.pivot(index="rank", columns="run", values="eigenvalue_score")
    assert (by_rank["a"] == by_rank["b"]).all()  # same roles, different head numbers
    assert ranked.query("run == 'b' and rank == 0")["head"].item() == 2


def test_attribution_and_ov_fit_summaries():
    attr = pd.DataFrame(
        {
            "layer": 0,
            "head": 0,
            "position": [0, 1, 2, 3],
            "variant": "target",
            "attribution": [100.0, 100.0, 1.0, 3.0],
        }
    )
    out = head_attribution_by_run({"r": attr}, from_pos=2)
    assert out["attribution"].item() == 2.0
    fits = pd.DataFrame(
        {
            "source": ["residual", "residual", "random"],
            "r2": [0.8, 0.6, 0.5],
            "slope": [2.0, 3.0, 1.0],
        }
    )
    summary = ov_fit_by_run({"r": fits}).set_index("source")
    assert (
        summary.loc["residual", "mean_r2"] == 0.7 and summary.loc["residual", "median_slope"] == 2.5
    )


def test_margins_sd_chance_and_other_readings_across_runs():
    """The margin every run with a verdict shares, the seeds' sd, chance notes with how many
    runs they concern, and the other reading most runs name with its verdicts."""

    def run(values, verdicts, loosest, strictest, passes, reading):
        return claims(values, verdicts).assign(
            chance=[0.5, 1.0],
            loosest=loosest,
            strictest=strictest,
            margin="",
            chance_passes=passes,
            chance_note=["", "chance passes by design" if passes[1] else ""],
            other_reading=["", reading],
            other_value=[float("nan"), 1.5],
            other_chance=[float("nan"), 1.0],
            other_verdict=["", "reproduced"],
            other_chance_verdict=["", "reproduced"],
        )

    R, N = "reproduced", "not reproduced"
    table = aggregate_claims(
        {
            "s0": run([1.0, 3.0], [R, N], [0.1, 0.4], [1.4, 10.0], [False, True], "median"),
            "s1": run([2.0, 5.0], [R, N], [0.1, 0.6], [2.5, 10.0], [False, True], "median"),
            "s2": run([3.0, 4.0], [R, N], [0.1, 0.3], [1.8, 10.0], [False, False], "largest"),
        }
    ).set_index("claim_id")
    assert table.loc["a", "sd"] == pytest.approx(1.0)
    assert table.loc["a", "margin"] == "reproduced in 3: holds up to x1.4 stricter"
    assert table.loc["b", "margin"] == "not reproduced in 3: fails until x0.6 looser"
    assert table.loc["a", "chance_note"] == ""
    assert table.loc["b", "chance_note"] == "chance passes by design (in 2 of 3 runs)"
    assert table.loc["b", "other_reading"] == (
        "median (closer than the literal reading in 2 of 3 runs): 1.5 (1.5 to 1.5), "
        "reproduced in 2 (chance 1: judged as well or better in 2)"
    )
    assert table.loc["a", "other_reading"] == ""
    # claims tables from before the margins have none to aggregate
    assert "margin" not in aggregate_claims({"s0": claims([1.0, 3.0], [R, R])})


def test_verdict_settled_since_is_the_latest_run_to_settle():
    R, D, N = "reproduced", "differs in degree", "not reproduced"
    rows = {
        # claim a: run s1 settles at 30 (N N R R), s2 at 10 (R R R R) -> 30
        ("a", "s1"): [N, N, R, R],
        ("a", "s2"): [R, R, R, R],
        # claim b: s1 flips at the last step -> still drifting: settled only at 40
        ("b", "s1"): [R, R, R, D],
        ("b", "s2"): [D, R, D, D],
    }
    table = pd.DataFrame(
        [
            {"run": run, "step": step, "claim_id": claim, "verdict": v}
            for (claim, run), verdicts in rows.items()
            for step, v in zip([10, 20, 30, 40], verdicts, strict=True)
        ]
        # a run measured only at its end (no snapshots) does not count
        + [{"run": "s3", "step": 40, "claim_id": c, "verdict": N} for c in "ab"]
    )
    settled = verdict_settled_since(table).set_index("claim_id")
    assert settled.loc["a", "settled_since"] == 30
    assert settled.loc["b", "settled_since"] == 40
    assert list(settled["runs"]) == [2, 2] and list(settled["last_step"]) == [40, 40]


def test_a_run_without_snapshots_is_told_the_real_reason():
    from affine_icl.over_training import no_snapshots_reason

    assert no_snapshots_reason(2000, 10_000) == (
        "its 2,000 steps end before the first snapshot (train.snapshot_every 10,000)"
    )
    assert no_snapshots_reason(100_000, 0) == "train.snapshot_every is 0"
    assert "before snapshots were kept" in no_snapshots_reason(100_000, 10_000)
