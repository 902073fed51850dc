"""Models the paper did not train (sweeps over depth): what does not exist says so."""

from types import SimpleNamespace

import matplotlib.image as mpimg
import pandas as pd
import pytest
import yaml

from affine_icl.claims.registry import judged_claims, listed_claims
from affine_icl.rules import layer_missing
from affine_icl.validation import REPO_ROOT, validate_config


def test_a_two_layer_model_judges_no_layer_2_claim_and_lists_them_all():
    two = {c.id for c in judged_claims("affine", n_layers=2)}
    assert "layer1_mean_ablation" in two and "layer0_previous_token_heads" in two
    assert not {"layer2_negative_copying", "layer2_qk_identity", "qk_intervention"} & two
    assert len(judged_claims("affine", n_layers=1)) < len(two) < len(judged_claims("affine", 3))
    assert [c.id for c in listed_claims("affine")][:2] == [
        "final_mse",
        "layer0_previous_token_heads",
    ]


def test_a_figure_of_a_missing_layer_says_so_instead_of_failing(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    config["runs"] = [{"name": "two", "seed": 0, "model": {"n_layers": 2}}]
    validate_config(config)
    output = SimpleNamespace(table=str(tmp_path / "t.csv"), png=str(tmp_path / "f.png"))
    sm = SimpleNamespace(config=config, wildcards=SimpleNamespace(run="two"), output=output)
    assert not layer_missing(sm, 1, "Figure 4")  # layer 1 exists: the figure is drawn
    assert not (tmp_path / "t.csv").exists()
    assert layer_missing(sm, 2, "Figure 12")
    reason = pd.read_csv(tmp_path / "t.csv")["not_applicable"].iloc[0]
    assert reason == "not applicable: run two has 2 layers, so no layer 2"
    assert mpimg.imread(tmp_path / "f.png")[..., :3].std() > 0.01  # the reason is drawn


def _with(path):
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    config.update(yaml.safe_load((REPO_ROOT / path).read_text()))
    validate_config(config)
    return config


def test_the_shipped_sweeps_expand_to_the_grids_they_describe():
    demo = _with("configs/sweep_demo.yaml")
    assert len(demo["runs"]) == 2 * 2 * 2
    assert demo["runs"][0] == {
        "name": "d_model64-n_layers2-s0",
        "seed": 0,
        "model": {"d_model": 64, "n_layers": 2},
    }
    paper = _with("configs/sweep_paper.yaml")
    assert len(paper["runs"]) == 4 * 3 * 5
    assert {e["model"]["n_layers"] for e in paper["runs"]} == {2, 3, 4}


def test_the_init_studys_runs_are_the_five_seeds_runs_by_weights_hash():
    """README "Results" and "Initialisation": the study's torch runs are five_seeds.yaml's seeds
    (torch is the default), and its transformer_lens seed 0 is the run every earlier Results
    table was trained as (the hash from before model.init existed)."""
    from affine_icl.config import run_config

    study, seeds = _with("configs/init_study.yaml"), _with("configs/five_seeds.yaml")
    for s in range(5):
        assert run_config(study, f"inittorch-s{s}").hash() == run_config(seeds, f"seed{s}").hash()
    assert run_config(study, "inittransformerlens-s0").hash() == "7348de03a261092c"


def test_every_per_run_analysis_rule_is_packed_into_its_runs_slurm_job():
    """workflow/profiles/slurm groups each run's analyses into one job; a new per-run rule
    must join the group, or a sweep submits one Slurm job per run for it."""
    import re

    from affine_icl.measure import TABLES

    profile = yaml.safe_load((REPO_ROOT / "workflow/profiles/slurm/profile.yaml").read_text())
    grouped = {entry.split("=")[0] for entry in profile["groups"]}
    assert {entry.split("=")[1] for entry in profile["groups"]} == {"analysis_{run}"}
    per_run = set()
    for smk in ("activations", "measure", "figures", "claims", "share", "tasks"):
        text = (REPO_ROOT / "workflow/rules" / f"{smk}.smk").read_text()
        per_run |= set(re.findall(r"^(?:rule|use rule \w+ as) (\w+)", text, flags=re.M))
    per_run |= {f"measure_{name}" for name in TABLES}  # measure.smk defines these in a loop
    across = {"fig01_sequence_types", "across_tasks"}  # of the data, or of every run
    assert grouped == per_run - across


def _claims(measured, verdict):
    """A claims table: final MSE (no chance level), a head count whose chance (0.17) is a
    per-head attention share, and the share outside W_E whose chance (0.61) is a share too."""
    return pd.DataFrame(
        {
            "claim_id": ["final_mse", "layer0_previous_token_heads", "outside_embedding_share"],
            "section": ["4.1", "4.2", "4.4"],
            "measured": [measured, 8.0, 0.6],
            "chance": [float("nan"), 0.17, 0.61],
            "verdict": [verdict, "reproduced", "not reproduced"],
        }
    )


def test_the_atlas_gives_each_setting_the_verdict_of_most_seeds_and_says_when_they_tie():
    from matplotlib.collections import PathCollection
    from matplotlib.colors import to_rgba

    from affine_icl.atlas import SEEDS_DISAGREE, atlas_table, verdicts_by_setting
    from affine_icl.figures.across_runs import ATLAS_COLOURS, plot_atlas

    runs = {  # width 64: a 1-1 tie; width 128: 2 of 3 seeds reproduce
        "w64-s0": (64, 0, 1.0, "reproduced"),
        "w64-s1": (64, 1, 3.0, "not reproduced"),
        "w128-s0": (128, 0, 1.0, "reproduced"),
        "w128-s1": (128, 1, 2.0, "reproduced"),
        "w128-s2": (128, 2, 6.0, "not reproduced"),
    }
    table = atlas_table(
        {run: _claims(m, v) for run, (_, _, m, v) in runs.items()},
        {run: {"model.d_model": w} for run, (w, *_) in runs.items()},
        {run: s for run, (_, s, *_) in runs.items()},
    )
    mse = table[table["claim_id"] == "final_mse"]
    assert list(mse["model.d_model"]) == [64, 64, 128, 128, 128]
    chance = table.groupby("claim_id")["chance"].first()
    assert chance["outside_embedding_share"] == 0.61  # drawn beside the share
    assert chance.isna()["layer0_previous_token_heads"]  # not a number of heads: not drawn
    by_width = mse.groupby("model.d_model")["seeds_verdict"].agg(set)
    assert by_width[64] == {SEEDS_DISAGREE} and by_width[128] == {"reproduced"}
    fig = plot_atlas(table, ["model.d_model"], "atlas")
    markers = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    fills = {tuple(c.get_offsets()[0].round(2)): tuple(c.get_facecolor()[0]) for c in markers}
    assert fills[(0.0 - 0.04, 2.0)] == to_rgba(ATLAS_COLOURS[SEEDS_DISAGREE])  # mean 2, tie
    assert fills[(1.0 - 0.04, 3.0)] == to_rgba(ATLAS_COLOURS["reproduced"])  # mean 3, 2 of 3

    def chance_marks(ax):
        return [
            y for line in ax.get_lines() if line.get_gid() == "chance" for y in line.get_ydata()
        ]

    assert chance_marks(fig.axes[2]) == [0.61, 0.61]  # the share panel, one dash per width
    assert all(y != y for y in chance_marks(fig.axes[1]))  # the head count: none (NaN)

    pooled = verdicts_by_setting(table, ["model.d_model"]).set_index(["setting", "claim_id"])
    at64, at128 = (
        pooled.loc["model.d_model=64", "final_mse"],
        pooled.loc["model.d_model=128", "final_mse"],
    )
    assert (at64["runs"], at64["reproduced"], at128["runs"], at128["reproduced"]) == (2, 1, 3, 2)
    assert at64["verdicts"] == "reproduced 1, not reproduced 1"  # a tie: reproduced first
    assert at128["verdicts"] == "reproduced 2, not reproduced 1"
    assert (at128["median"], at128["min"], at128["max"]) == (2.0, 1.0, 6.0)
    assert at64["differs"] and at128["differs"]  # 1 of 2 vs 2 of 3
    assert not pooled["differs"][:, "layer0_previous_token_heads"].any()  # all reproduced
    # claims tables without margins have none to pool; with them, the seeds' shared margin
    assert at128["margin"] == "-" and at128["chance_passes_in"] == 0
    margined = {
        run: _claims(m, v).assign(
            loosest=0.1,
            strictest=[1.5 + s, 2.0, 3.0],
            margin="(per run)",
            chance_passes=[False, False, s == 1],
        )
        for run, (_, s, m, v) in runs.items()
    }
    pooled = verdicts_by_setting(
        atlas_table(
            margined,
            {run: {"model.d_model": w} for run, (w, *_) in runs.items()},
            {run: s for run, (_, s, *_) in runs.items()},
        ),
        ["model.d_model"],
    ).set_index(["setting", "claim_id"])
    at128 = pooled.loc["model.d_model=128", "final_mse"]
    # reproduced by seeds 0 (up to x1.5) and 1 (x2.5): both hold up to x1.5
    assert at128["margin"].startswith("reproduced in 2: holds up to x1.5 stricter")
    assert pooled.loc["model.d_model=128", "outside_embedding_share"]["chance_passes_in"] == 1


def test_sweep_loss_curves_group_runs_by_setting_and_take_each_runs_last_step(tmp_path):
    """Known answer: two settings x two seeds, logs whose held-out MSE is 1/step times a
    per-run factor; rows between evaluations (NaN) are left out."""
    import numpy as np

    from affine_icl.atlas import final_mse_by_setting, loss_curves_table
    from affine_icl.figures.across_runs import plot_sweep_loss_curves
    from affine_icl.figures.style import save_figure

    def log(factor, last):
        steps = np.arange(100, last + 1, 100)
        mse = np.where(steps % 200 == 0, factor / steps, np.nan)  # evaluated every 200 steps
        return pd.DataFrame({"step": steps, "train_loss": 1.0, "heldout_mse": mse})

    logs = {"a0": log(1, 1000), "a1": log(3, 1000), "b0": log(10, 1000), "b1": log(20, 800)}
    settings = {r: {"model.init": "torch" if r[0] == "a" else "transformer_lens"} for r in logs}
    seeds = {r: int(r[1]) for r in logs}
    curves = loss_curves_table(logs, settings, seeds)
    assert len(curves) == 5 + 5 + 5 + 4 and curves["heldout_mse"].notna().all()
    assert set(curves["setting"]) == {"model.init=torch", "model.init=transformer_lens"}
    finals = final_mse_by_setting(curves).set_index("setting")
    torch_row = finals.loc["model.init=torch"]
    assert torch_row["runs"] == 2 and torch_row["steps"] == 1000
    assert torch_row["median_final_mse"] == pytest.approx(2 / 1000)
    assert torch_row["final_mse_by_seed"] == "s0: 1.00e-03, s1: 3.00e-03"
    tl_row = finals.loc["model.init=transformer_lens"]
    assert tl_row["steps"] == 800  # the shorter run's last step
    assert tl_row["min_final_mse"] == pytest.approx(10 / 1000)
    assert tl_row["max_final_mse"] == pytest.approx(20 / 800)
    png = tmp_path / "curves.png"
    save_figure(plot_sweep_loss_curves(curves, finals.reset_index()), png)
    assert mpimg.imread(png).shape[0] > 300
