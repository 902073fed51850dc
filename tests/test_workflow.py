"""The whole DAG, end to end, through Snakemake itself on the tiny config.

The workflow is copied into a temporary tree so that a test can edit one script there and ask
Snakemake what it would rerun.
"""

import json
import os
import re
import subprocess
import sys
import zipfile

import matplotlib.image as mpimg
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import FIGURES, REPO, copy_workflow
from safetensors import safe_open
from safetensors.torch import load_file

from affine_icl.export import load_pretrained
from affine_icl.measure import TABLES
from affine_icl.model import load_model, read_metadata


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    copy_workflow(root)
    return root


def snakemake(tree, *args, timeout=900, directory=None, configfile=None):
    """Snakemake on the tiny config (or ``configfile``), in ``tree/work`` unless ``directory``
    says otherwise."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(tree / "workflow" / "Snakefile"),
        "--directory",
        str(directory or tree / "work"),
        "--configfile",
        str(configfile or REPO / "tests" / "config" / "tiny.yaml"),
        *args,
    ]
    # the tree's copy of the library, in Snakemake (`python -m` puts the working directory
    # first on sys.path) and in its jobs
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=tree
    )


@pytest.fixture(scope="module")
def built(tree):
    proc = snakemake(tree, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tree / "work" / "results"


def planned_jobs(tree, *args) -> set[str]:
    proc = snakemake(tree, "--dry-run", *args)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return set()
    stats = text.split("Job stats:")[1].split("total")[0]
    return set(re.findall(r"^(\w+)\s+\d+\s*$", stats, flags=re.M))


def test_every_rule_ran_and_wrote_a_log(built):
    for log in [
        "generate_data.log",
        "fig01_sequence_types.log",
        "train/tiny.log",
        "cache_activations/tiny.log",
        "claims/tiny.log",
    ] + [f"{f}/tiny.log" for f in FIGURES]:
        assert (built / "logs" / log).is_file(), log
    assert "final held-out MSE" in (built / "logs/train/tiny.log").read_text()
    bench = pd.read_csv(built / "benchmarks/train/tiny.tsv", sep="\t")
    assert bench["s"].iloc[0] > 0


def test_every_rule_recorded_its_time_and_memory_for_bench_rule_costs(built, tree):
    """Every rule that ran wrote a benchmark; bench/rule_costs.py sets them against config
    resources (the tiny runs fit in what config.yaml asks for)."""
    rules = {
        name for smk in (REPO / "workflow/rules").glob("*.smk") for name in rule_names(smk.name)
    }
    # no sweep here (atlas, sweep_loss_curves); train and the measure rules are defined in loops
    measures = {f"measure_{name}" for name in TABLES}
    ran = (rules - {"atlas", "sweep_loss_curves"}) | {"train"} | measures
    benchmarked = pd.read_csv(costs_csv(tree))
    assert set(benchmarked["rule"]) == ran, set(benchmarked["rule"]) ^ ran
    assert (benchmarked["jobs"] >= 1).all() and (benchmarked["max_s"] > 0).all()


def costs_csv(tree):
    out = tree / "work" / "costs.csv"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "rule_costs.py"),
            "--results",
            str(tree / "work" / "results"),
            "--configfile",
            str(REPO / "tests" / "config" / "tiny.yaml"),
            "--csv",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| rule | jobs | median_s | max_s | max_rss_mb |" in proc.stdout
    return out


def test_two_task_families_each_with_its_population_baselines_and_claims(built):
    """tiny is the paper's affine task, tiny2 a linear recurrence of order 2 (tiny.yaml)."""
    (linear,) = (built / "data").glob("linear2-*/eval_population.parquet")
    table = pq.read_table(linear)
    assert "coefs" in table.column_names and table.num_rows == 5 * 32  # lengths 4..8
    assert "coefs" not in pq.read_table(built / "data/eval_population.parquet").column_names
    for run, first in (("tiny", 2), ("tiny2", 3)):
        base = pd.read_csv(built / f"runs/{run}/figures/baselines.csv")
        assert set(base["predictor"]) == {
            "model",
            "least squares",
            "repeat last",
            "linear extrapolation",
        }
        assert base.loc[base["trained"], "position"].min() == first  # the run's loss_from_index
        floor = base[(base["predictor"] == "least squares") & base["trained"]]["mse"]
        assert floor.max() < 1e-8  # noise-free: the task's own solver is exact there
    claims = pd.read_csv(built / "runs/tiny2/claims.csv").set_index("claim_id")
    assert claims.loc["layer2_checkerboard", "verdict"] == "not applicable"
    assert claims.loc["linear_offset_heads", "verdict"] != "not applicable"
    assert "offsets_ratio" in pd.read_csv(built / "runs/tiny2/analysis/head_scores.csv")
    assert "linear_offset_heads" not in set(pd.read_csv(built / "runs/tiny/claims.csv")["claim_id"])
    across = pd.read_csv(built / "aggregate/across_tasks.csv")
    assert list(across["task"]) == ["affine", "linear2"] and list(across["run"]) == [
        "tiny",
        "tiny2",
    ]
    assert (across["least_squares_mse"] < 1e-8).all() and (across["model_mse"] > 0).all()
    image = mpimg.imread(built / "aggregate/across_tasks.png")
    assert image.shape[0] > 600 and image[..., :3].std() > 0.05


def test_data_outputs(built):
    pop = pq.read_table(built / "data/eval_population.parquet")
    assert pop.num_rows == 6 * 32  # lengths 3..8, 32 each (tiny.yaml)
    assert sorted(set(pop.column("length").to_pylist())) == list(range(3, 9))


def test_training_outputs(built):
    run = built / "runs/tiny"
    model = load_model(run / "model.safetensors")
    assert model.cfg.d_model == 32 and model.cfg.d_vocab == 40
    assert read_metadata(run / "model.safetensors")["step"] == "200"
    assert load_model(run / "model_folded.safetensors").cfg.normalization_type == "LNPre"
    log = pd.read_parquet(run / "train_log.parquet")
    assert log["step"].tolist() == list(range(20, 201, 20))
    assert log["heldout_mse"].notna().sum() == 2
    # the final checkpoint stays, so a rerun of train on this finished run takes seconds
    assert [p.name for p in (built / "checkpoints/tiny").glob("*/step-*")] == ["step-000000200"]
    snapshots = sorted(p.name for p in (run / "snapshots").glob("step-*"))
    assert snapshots == ["step-000000100.safetensors", "step-000000200.safetensors"]
    assert read_metadata(run / "snapshots" / snapshots[0])["step"] == "100"
    for path in (run / "model.safetensors", run / "model_folded.safetensors"):
        assert len(read_metadata(path)["code_hash"]) == 16  # the code that wrote them


def test_activation_cache_carries_the_config_hash(built):
    meta = read_metadata(built / "runs/tiny/model.safetensors")
    for family in ["resid", "head_result", "pattern", "mlp_out", "ln_scale", "outputs"]:
        schema = pq.read_schema(built / f"runs/tiny/activations/{family}.parquet")
        assert schema.metadata[b"config_hash"].decode() == meta["config_hash"]


def test_every_figure_and_its_table(built):
    fig1 = pd.read_csv(built / "figures/fig01_sequence_types.csv")
    assert fig1["sequence_type"].nunique() == 3 and fig1["dim"].max() == 7  # fig01_dims_shown: 8
    pngs = [built / "figures/fig01_sequence_types.png"]
    for name in FIGURES:
        table = pd.read_csv(built / f"runs/tiny/figures/{name}.csv")
        assert len(table) > 0, name
        pngs.append(built / f"runs/tiny/figures/{name}.png")
    for png in pngs:
        image = mpimg.imread(png)
        assert image.ndim == 3 and image.shape[0] > 250 and image.shape[1] > 400, png.name
        assert image[..., :3].std() > 0.05, png.name  # not a blank canvas
    picked = pd.read_csv(built / "runs/tiny/figures/fig12_layer2_ov.csv")["picked_by"].iloc[0]
    assert picked.startswith("lowest eigenvalue_score in layer 2: L2H")


def test_claims_table(built):
    claims = pd.read_csv(built / "runs/tiny/claims.csv")
    assert len(claims) == 20
    assert set(claims["verdict"]) <= {
        "reproduced",
        "differs in degree",
        "not reproduced",
        "not measurable",
    }
    # a 200-step tiny model does not reach the paper's MSE, and the table says so
    assert claims.set_index("claim_id").loc["final_mse", "verdict"] == "not reproduced"
    assert (built / "runs/tiny/claims.md").read_text().startswith("# Claims of Bhargav & Gu")
    # every verdict beside its chance level, with its margin in strictness factors
    judged = claims["verdict"].isin(["reproduced", "differs in degree", "not reproduced"])
    assert claims.loc[judged, "margin"].str.match(r"^(holds|fails|differs|none: )").all()
    at_chance = claims["margin"].str.startswith("none: ")
    assert (claims.loc[judged & ~at_chance, "loosest"] <= 1).all()
    assert (claims.loc[judged & ~at_chance, "strictest"] >= 1).all()
    assert claims["chance_note"].fillna("").eq("").eq(~claims["chance_passes"]).all()
    scores = pd.read_csv(built / "runs/tiny/analysis/head_scores.csv")
    for column in [
        "previous_token_chance",
        "key1_ratio",
        "qk_identity_d_model_z",
        "checkerboard_z",
    ]:
        assert scores[column].notna().all(), column
    grid = pd.read_csv(built / "runs/tiny/claims_sensitivity.csv")
    assert set(grid["claim_id"]) == set(claims["claim_id"])
    assert set(grid["factor"]) == {0.5, 0.75, 1.0, 1.5, 2.0}
    configured = grid[(grid["definition"] == "as configured") & (grid["factor"] == 1.0)]
    assert list(configured["verdict"]) == list(claims["verdict"])  # one measurement, two tables
    assert mpimg.imread(built / "runs/tiny/claims_sensitivity.png").shape[0] > 400


def test_claims_over_training(built):
    """Every claim at each snapshot (its tables measured in memory through run_tables, the
    function the measure rules write theirs with, by measure_over_training;
    tests/test_measure.py checks the two caches agree); at the last step the claims table
    itself: the rule judges the measure rules' tables."""
    for name, entry in TABLES.items():
        over = pd.read_csv(built / f"runs/tiny/over_training/{name}.csv")
        assert set(over["step"]) == {100}, name  # the final step is the measure rules'
        assert list(over.columns[:1]) == ["step"] and set(entry.columns) <= set(over.columns)
    table = pd.read_csv(built / "runs/tiny/claims_over_training.csv")
    claims = pd.read_csv(built / "runs/tiny/claims.csv").set_index("claim_id")
    assert list(table.columns) == ["step", "claim_id", "measured", "chance", "effect", "verdict"]
    assert sorted(set(table["step"])) == [100, 200]
    assert (table.groupby("step")["claim_id"].apply(list) == [list(claims.index)] * 2).all()
    final = table[table["step"] == 200].set_index("claim_id")
    for column in ("measured", "chance", "effect", "verdict"):
        pd.testing.assert_series_equal(final[column], claims[column], obj=column)
    mse = pd.read_parquet(built / "runs/tiny/train_log.parquet").set_index("step")["heldout_mse"]
    first = table[(table["step"] == 100) & (table["claim_id"] == "final_mse")]
    assert first["measured"].iloc[0] == pytest.approx(mse.loc[100])  # the log up to step 100
    across = pd.read_csv(built / "aggregate/claims_over_training.csv")
    assert set(across["run"]) == {"tiny", "tiny2"} and len(across) == 2 * len(table)
    for png in ["runs/tiny/claims_over_training.png", "aggregate/claims_over_training.png"]:
        image = mpimg.imread(built / png)
        assert image.shape[0] > 600 and image[..., :3].std() > 0.05, png


def test_export_attention_views_and_the_walkthrough(built, tree):
    """export_model and attention_views are in the DAG; the export loads to the trained model;
    examples/explore.py runs on it as a plain script."""
    export = built / "models/tiny"
    assert sorted(p.name for p in export.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    x = torch.randn(2, 8, 40, generator=torch.Generator().manual_seed(0))
    trained_model = load_model(built / "runs/tiny/model.safetensors")
    assert torch.equal(load_pretrained(export)(x), trained_model(x))
    views = built / "runs/tiny/attention_views"
    pages = sorted(p.name for p in views.glob("*.html"))
    assert pages == ["index.html", "layer0.html", "layer1.html", "layer2.html"]
    assert "CircuitsVis.AttentionHeads" in (views / "layer2.html").read_text()
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "explore.py")],
        env={**os.environ, "AFFINE_ICL_MODEL": str(export)},
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"loaded {export}: 3 layers, 4 heads per layer" in proc.stdout
    assert "OV eigenvalue score" in proc.stdout


def test_across_runs_outputs(built):
    claims = pd.read_csv(built / "aggregate/claims.csv").set_index("claim_id")
    assert len(claims) == 21  # the paper's 20 and tiny2's linear-task claim
    assert {"value tiny", "value tiny2"} <= set(claims.columns)
    assert (
        claims["summary"]
        .drop(["layer2_checkerboard", "linear_offset_heads"])
        .str.fullmatch(r"holds in [0-2] of 2 runs")
        .all()
    )
    # each applies to one run's task only (tiny: affine, tiny2: linear of order 2)
    for claim in ("layer2_checkerboard", "linear_offset_heads"):
        assert re.fullmatch(
            r"holds in [01] of 1 runs \(not applicable in 1\)", claims.loc[claim, "summary"]
        )
    ranked = pd.read_csv(built / "aggregate/seeds_eigenvalue_scores.csv")
    assert set(ranked["run"]) == {"tiny", "tiny2"} and ranked["rank"].max() == 3
    for name in ["seeds_eigenvalue_scores", "seeds_head_attribution", "seeds_layer0_ov"]:
        assert mpimg.imread(built / f"aggregate/{name}.png").shape[0] > 250
    grid = pd.read_csv(built / "aggregate/claims_sensitivity.csv")
    assert set(grid["run"]) == {"tiny", "tiny2"}
    assert mpimg.imread(built / "aggregate/claims_sensitivity.png").shape[0] > 400


def rule_names(smk: str) -> list[str]:
    """The rules a workflow/rules/*.smk file defines, ``use rule ... as`` ones included."""
    text = (REPO / "workflow" / "rules" / smk).read_text()
    return re.findall(r"^(?:rule|use rule \w+ as) (\w+)", text, flags=re.M)


def zip_report(path) -> tuple[dict, dict, str, zipfile.ZipFile]:
    """A zip report's items ({path: entry}), categories ({category: {subcategory: [path]}}),
    its report.html and the archive (items lie at ``<stem>/<entry["data_uri"]>``)."""
    archive = zipfile.ZipFile(path)
    page = archive.read(f"{path.stem}/report.html").decode()
    found = {
        name: json.loads(re.search(rf"^\s*var {name} = (\{{.*\}});$", page, flags=re.M)[1])
        for name in ("results", "categories")
    }
    return found["results"], found["categories"], page, archive


def test_report_lists_claims_as_html_then_every_figure_in_paper_order(built, tree):
    report = tree / "work" / "report.zip"
    proc = snakemake(tree, "--report", str(report))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR/" not in proc.stdout + proc.stderr  # docutils errors in a caption
    results, categories, page, archive = zip_report(report)
    # every figure rule has its PNG in the report, once per run (Figure 1 once)
    items = {
        (e["job_properties"]["rule"], e["job_properties"]["wildcards"]): e for e in results.values()
    }
    figures = rule_names("figures.smk")
    across = [r for r in rule_names("aggregate.smk") if r != "aggregate_claims"]
    expected = [("fig01_sequence_types", "")] + [
        (f, f"run={r}") for f in figures[1:] for r in ("tiny", "tiny2")
    ]
    expected += [(f, "") for f in across]
    expected += [("baselines", f"run={r}") for r in ("tiny", "tiny2")] + [("across_tasks", "")]
    assert [k for k in expected if k not in items or items[k]["mime_type"] != "image/png"] == []
    # the interactive attention views, one page per layer and an index, per run
    views = [e for e in results.values() if e["job_properties"]["rule"] == "attention_views"]
    assert sorted(e["labels"]["figure"] for e in views) == sorted(
        ["index", "layer0", "layer1", "layer2"] * 2
    )
    assert {e["mime_type"] for e in views} == {"text/html"}
    assert {e["labels"]["in the paper"] for e in views} == {"Fig. 03-06 (interactive)"}
    # the claims, per run and across runs, as HTML tables with coloured verdicts
    for key in [("claims", "run=tiny"), ("claims", "run=tiny2"), ("aggregate_claims", "")]:
        assert items[key]["mime_type"] == "text/html", key
        table = archive.read(f"{report.stem}/{items[key]['data_uri']}").decode()
        assert "<table>" in table and re.search(r'<td class="(holds|partial|fails|unknown)', table)
    # categories, subcategories and items in the order the report lists them (as text)
    assert list(sorted(categories)) == ["0. Claims", "1. Figures by run", "2. Figures across runs"]
    assert sorted(categories["0. Claims"]) == ["across runs", "run tiny", "run tiny2"]
    # the report opens with the claims across runs, then how they moved over training
    opening = sorted(results[p]["labels"]["item"] for p in categories["0. Claims"]["across runs"])
    assert opening == [
        "1. claims across runs",
        "2. claims over training across runs",
        "3. verdict sensitivity across runs",
    ]
    assert sorted(categories["1. Figures by run"]) == ["data (Figure 1)", "run tiny", "run tiny2"]
    shown = sorted(
        [results[p]["labels"]["in the paper"], results[p]["labels"]["figure"]]
        for p in categories["1. Figures by run"]["run tiny"]
        if results[p]["job_properties"]["rule"] != "attention_views"
    )
    extra = ["embedding_span", "mean_ablation_layer1", "qk_intervention"]
    in_paper_order = sorted(f for f in figures[1:] if f not in extra) + extra + ["baselines"]
    assert [figure for _, figure in shown] == in_paper_order  # beyond the paper last
    assert [label for label, _ in shown][:3] == ["Fig. 02", "Fig. 03", "Fig. 04"]
    # captions and introduction
    captions = [e["caption"] for e in results.values()]
    assert all(captions) and not any("measured values are in the figure" in c for c in captions)
    assert "Paper:" in page and "200 steps" in page and "not the paper" in page
    # the front page reads what was trained from the weights, not the config at report time
    longer = tree / "work" / "report_longer.zip"
    proc = snakemake(tree, "--report", str(longer), "--config", "train={steps: 5000}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = zip_report(longer)[2]
    assert "200 steps trained" in page and "5,000 steps" not in page
    assert "<strong>Code:</strong> commit " in page and "library source" in page


def test_nothing_left_to_do_after_a_build(built, tree):
    proc = snakemake(tree, "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_a_touched_population_or_a_new_logging_cadence_retrains_nothing(built, tree):
    """Issue: a touched eval_population.parquet planned `train`, deleting a finished model."""
    population = built / "data" / "eval_population.parquet"
    before, content = population.stat(), population.read_bytes()
    try:
        # new bytes (Snakemake ignores a newer file with the recorded checksum) and a new mtime
        population.write_bytes(content + b"\0")
        os.utime(population, (before.st_atime + 3600, before.st_mtime + 3600))
        planned = planned_jobs(tree)
        # ... while the rules that analyse the population do rerun
        assert "train" not in planned and "cache_activations" in planned
    finally:
        population.write_bytes(content)
        os.utime(population, ns=(before.st_atime_ns, before.st_mtime_ns))
    cadence = "train={log_every: 10, eval_every: 50, checkpoint_every: 50, eval_per_length: 8}"
    proc = snakemake(tree, "--dry-run", "--config", cadence)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    changed = snakemake(tree, "--dry-run", "--config", "train={lr: 0.002}")
    text = changed.stdout + changed.stderr
    assert re.search(r"^train\s+2\s*$", text, flags=re.M)
    # the rerun reason names the changed key, not the whole config (1,300 characters before)
    reasons = [line for line in text.splitlines() if "Params have changed" in line]
    assert reasons and all("'train.lr': 0.001" in line for line in reasons)
    assert all("'train.lr': 0.002" in line for line in reasons)
    assert max(map(len, reasons)) < 250, reasons[0]


def test_switching_train_batched_on_a_trained_one_run_config_retrains_nothing(built, tree):
    one_run = "runs=[{name: tiny, seed: 7}]"
    assert not {"train", "train_tiny"} & planned_jobs(tree, "--config", one_run)
    planned = planned_jobs(tree, "--config", one_run, "train_batched=True")
    assert not {"train", "train_tiny"} & planned


@pytest.mark.parametrize(
    ("directory", "args"), [("workflow", []), ("scripts", ["-s", "../workflow/Snakefile"])]
)
def test_started_inside_the_repository_it_refuses_and_writes_nothing(tree, directory, args):
    """Snakemake finds workflow/Snakefile from workflow/ too, and would plan everything into
    workflow/results/ (from scripts/ with -s, into scripts/results/)."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--dry-run", *args],
        cwd=tree / directory,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    message = f"run snakemake from the repository root (cd ..), not from {directory}/"
    assert message in proc.stdout + proc.stderr
    assert not (tree / directory / "results").exists()
    assert not (tree / directory / ".snakemake").exists()


def test_a_finished_run_retrains_in_seconds_to_identical_files(built, tree):
    """Issue: scripts/train.py removed the final checkpoint, so a rerun of `train` on a finished
    run (forced, or after Snakemake died before recording the job) trained from step 0."""
    run = built / "runs" / "tiny"
    outputs = [run / name for name in ("model.safetensors", "optimizer.pt", "train_log.parquet")]
    snapshots = sorted((run / "snapshots").glob("step-*"))
    outputs += [*snapshots, run / "snapshots" / ".snakemake_timestamp", run / "snapshots"]
    stats = [p.stat() for p in outputs]
    old_snapshots = [load_file(str(p)) for p in snapshots]
    old = _contents(run)
    target = "results/runs/tiny/model.safetensors"
    proc = snakemake(tree, "--cores", "1", "--forcerun", "train", "--", target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^train\s+1\s*$", proc.stdout + proc.stderr, flags=re.M)
    new = _contents(run)
    for name in ("weights", "optimizer"):
        assert new[name].keys() == old[name].keys()
        for key in old[name]:
            assert torch.equal(new[name][key], old[name][key]), (name, key)
    assert new["metadata"] == old["metadata"]
    assert new["log"].equals(old["log"])
    assert sorted((run / "snapshots").glob("step-*")) == snapshots
    for path, tensors in zip(snapshots, old_snapshots, strict=True):
        now = load_file(str(path))
        assert all(torch.equal(now[k], tensors[k]) for k in tensors), path
    text = (built / "logs" / "train" / "tiny.log").read_text()
    assert "resumed from step 200 of 200" in text
    assert oct(outputs[0].stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    # the contents are identical: give the files their old times back so that later tests see
    # a finished tree without rebuilding every figure
    for path, stat in zip(outputs, stats, strict=True):
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert planned_jobs(tree) == set()


def _contents(run) -> dict:
    """A run's outputs as comparable values. The safetensors header's metadata is a hash map,
    so its key order (hence the file's bytes) varies between writes of equal contents."""
    with safe_open(run / "model.safetensors", "pt") as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    state = torch.load(run / "optimizer.pt", weights_only=True)
    optimizer = {
        f"{moment}:{name}": value
        for moment in ("exp_avg", "exp_avg_sq")
        for name, value in state[moment].items()
    }
    optimizer["step"] = torch.tensor(state["step"])
    log = pq.read_table(run / "train_log.parquet")
    return {"weights": weights, "metadata": metadata, "optimizer": optimizer, "log": log}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(
    "script,expected",
    [
        # Figure 8 draws the layer-0 OV fits that measure_ov_regressions writes: the claims,
        # Figures 10 and 17 and the across-runs figures read that table, not Figure 8's rule
        ("fig08_layer0_ov.py", {"fig08_layer0_ov", "all"}),
        ("fig15_eigenvalue_scores.py", {"fig15_eigenvalue_scores", "all"}),
    ],
)
def test_editing_one_script_reruns_only_that_rule_and_its_dependants(built, tree, script, expected):
    """Snakemake reruns a script rule when its script's mtime is newer than its outputs."""
    path = tree / "scripts" / script
    original, stat = path.read_text(), path.stat()
    try:
        path.write_text(original + "\n# an edit\n")
        assert planned_jobs(tree) == expected
    finally:
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert planned_jobs(tree) == set()


def test_editing_the_library_reruns_the_rules_that_import_it_never_training(built, tree):
    """Each rule's library_code param hashes its script and the modules it imports
    (affine_icl.provenance); training and data are keyed by TRAINING_ARITHMETIC instead."""
    path = tree / "affine_icl" / "analysis" / "chance.py"
    original, stat = path.read_text(), path.stat()
    try:
        path.write_text(original + "\n# an edit\n")
        planned = planned_jobs(tree)
        assert {"measure_head_scores", "claims", "fig13_layer2_qk"} <= planned
        assert not planned & {"train", "generate_data", "generate_task_data"}
        proc = snakemake(tree, "--dry-run")
        assert "library_code" in proc.stdout + proc.stderr
    finally:
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert planned_jobs(tree) == set()


def test_a_changed_criterion_judges_again_without_measuring_again(built, tree, tmp_path):
    """A criterion is a param of the rules that judge (claims, their sensitivity, the claims
    over training), not of those that measure: the snapshots' tables stay as they are."""
    changed = tmp_path / "criterion.yaml"
    changed.write_text("claims:\n  final_mse: {at_most: 3.0e-4, differs_up_to: 1.0e-3}\n")
    tiny = REPO / "tests" / "config" / "tiny.yaml"
    planned = planned_jobs(tree, "--configfile", str(tiny), str(changed))  # the later one wins
    assert {"claims", "claims_sensitivity", "claims_over_training"} <= planned
    assert not planned & {"measure_over_training", "measure_head_scores", "cache_activations"}


def test_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_batched_training_trains_seed_runs_in_one_job_with_the_same_results(built, tree, tmp_path):
    """train_batched: one job trains both tiny runs; each equals its run trained alone."""
    # two runs that differ only in their seed (tiny.yaml's tiny2 is a linear-task run)
    runs = "runs=[{name: tiny, seed: 7}, {name: tiny2, seed: 8}]"
    args = ("--config", "train_batched=True", runs, "--cores", "2")
    targets = [f"results/runs/{run}/model.safetensors" for run in ("tiny", "tiny2")]
    plan = snakemake(tree, *args, "--dry-run", *targets, directory=tmp_path, timeout=120)
    assert plan.returncode == 0, plan.stderr
    stats = (plan.stdout + plan.stderr).split("Job stats:")[1].split("total")[0]
    # training reads no file (it draws its held-out sequences from the config): one job
    assert re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M) == [("train_tiny_tiny2", "1")]
    proc = snakemake(tree, *args, *targets, directory=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for run in ("tiny",):  # tiny2 trained alone is the linear-task run
        alone = load_model(built / "runs" / run / "model.safetensors").state_dict()
        batched = load_model(tmp_path / "results" / "runs" / run / "model.safetensors").state_dict()
        for name, value in alone.items():
            if not name.endswith("attn.b_K"):  # see tests/test_stacked.py::assert_same_run
                assert (value - batched[name]).abs().max() < 1e-3, (run, name)


def test_configs_tasks_yaml_schedules_the_baselines_and_across_tasks(tree, tmp_path):
    """One run per task family: each its own population, every figure, the baselines, and the
    families side by side (a dry run of the shipped config, from an empty directory)."""
    tasks = REPO / "configs" / "tasks.yaml"
    proc = snakemake(tree, "--dry-run", directory=tmp_path, configfile=tasks, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = (proc.stdout + proc.stderr).split("Job stats:")[1].split("total")[0]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M))
    assert counts["baselines"] == counts["train"] == counts["claims"] == "5"
    assert counts["across_tasks"] == "1"
    assert counts["generate_task_data"] == "4"  # the affine run uses the shared population
    assert "results/tasks/aggregate/across_tasks.png" in proc.stdout + proc.stderr


def planned_config(tree, directory, name) -> tuple[str, dict[str, str]]:
    """A dry run of ``configs/<name>``: its output and the job count of each rule."""
    path = REPO / "configs" / name
    proc = snakemake(tree, "--dry-run", directory=directory, configfile=path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    stats = text.split("Job stats:")[1]
    return text, dict(re.findall(r"^(\w+)\s+(\d+)\s*$", stats, flags=re.M))


def test_configs_sweep_demo_lists_its_runs_and_the_atlas(tree, tmp_path):
    text, counts = planned_config(tree, tmp_path, "sweep_demo.yaml")
    assert counts["train"] == counts["claims"] == "8" and counts["atlas"] == "1"
    assert counts["sweep_loss_curves"] == "1"
    # a sweep keeps its runs and across-runs figures apart from the paper's (config `results`)
    for name in ("d_model64-n_layers2-s0", "d_model128-n_layers3-s1"):
        assert f"results/sweep_demo/runs/{name}/claims.md" in text
    assert "results/sweep_demo/aggregate/atlas.csv" in text
    assert "results/sweep_demo/aggregate/claims.md" in text
    assert not re.search(r"results/(runs|aggregate)/", text)


def test_configs_init_study_lists_ten_runs_under_two_inits_and_the_atlas(tree, tmp_path):
    text, counts = planned_config(tree, tmp_path, "init_study.yaml")
    assert (
        counts["train"] == counts["measure_over_training"] == counts["claims_over_training"] == "10"
    )
    assert counts["atlas"] == counts["sweep_loss_curves"] == "1"
    for init in ("transformerlens", "torch"):
        for seed in range(5):
            assert f"results/init_study/runs/init{init}-s{seed}/model.safetensors" in text
    assert "results/init_study/aggregate/atlas.csv" in text
