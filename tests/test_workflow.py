"""The whole DAG, end to end, through Snakemake itself on the tiny config."""
import subprocess
import sys

import matplotlib.image as mpimg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from affine_icl.model import load_model, read_metadata
from conftest import REPO

TINY = REPO / "tests" / "config" / "tiny.yaml"


def snakemake(workdir, *args, timeout=600):
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(TINY), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dag")
    proc = snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir / "results"


def test_every_rule_ran_and_wrote_a_log(built):
    for log in ["generate_data.log", "fig01_sequence_types.log", "train/tiny.log",
                "fig02_loss_curve/tiny.log"]:
        assert (built / "logs" / log).is_file(), log
    assert "final held-out MSE" in (built / "logs/train/tiny.log").read_text()
    bench = pd.read_csv(built / "benchmarks/train/tiny.tsv", sep="\t")
    assert bench["s"].iloc[0] > 0


def test_data_outputs(built):
    pop = pq.read_table(built / "data/eval_population.parquet")
    assert pop.num_rows == 6 * 32  # lengths 3..8, 32 each (tiny.yaml)
    assert sorted(set(pop.column("length").to_pylist())) == list(range(3, 9))


def test_training_outputs(built):
    run = built / "runs/tiny"
    model = load_model(run / "model.safetensors")
    assert model.cfg.d_model == 32 and model.cfg.d_vocab == 40
    assert read_metadata(run / "model.safetensors")["step"] == "200"
    log = pd.read_parquet(run / "train_log.parquet")
    assert log["step"].tolist() == list(range(20, 201, 20))
    assert log["heldout_mse"].notna().sum() == 2
    assert not (built / "checkpoints/tiny").exists() or not any((built / "checkpoints/tiny").iterdir())


def test_figures_and_tables(built):
    fig1 = pd.read_csv(built / "figures/fig01_sequence_types.csv")
    assert fig1["sequence_type"].nunique() == 3 and fig1["dim"].max() == 7  # fig01_dims_shown: 8
    fig2 = pd.read_csv(built / "runs/tiny/figures/fig02_loss_curve.csv")
    assert list(fig2.columns) == ["step", "series", "mse"] and fig2["mse"].gt(0).all()
    for png in [built / "figures/fig01_sequence_types.png",
                built / "runs/tiny/figures/fig02_loss_curve.png"]:
        image = mpimg.imread(png)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
        assert image[..., :3].std() > 0.05  # not a blank canvas


def test_nothing_left_to_do_after_a_build(built):
    proc = snakemake(built.parent, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr
