"""Results stay true to their inputs: a rule refuses weights, snapshots, logs and populations
made under other settings than its run's config now has (Snakemake cannot see such a change
when it has no record of it), and every rule but training reruns when the library code its
script imports changes."""

import copy
import shutil
from types import SimpleNamespace

import pytest
import yaml
from conftest import REPO

from affine_icl import provenance
from affine_icl.config import run_config
from affine_icl.data import population_table, write_parquet
from affine_icl.model import read_metadata
from affine_icl.over_training import weights_by_step
from affine_icl.rules import StaleInput, check_provenance
from affine_icl.train import save_outputs, train
from affine_icl.validation import validate_config


def tiny_config(**train) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text()))
    config["runs"] = [{"name": "tiny", "seed": 7}]
    settings = {"steps": 40, "snapshot_every": 20, "checkpoint_every": 20, "eval_every": 20}
    config["train"].update({**settings, **train})
    validate_config(config)
    return config


class Inputs(dict):
    """What a script sees as ``snakemake.input``: names as keys and as attributes."""

    __getattr__ = dict.__getitem__


def job(config, **inputs):
    return SimpleNamespace(
        config=config, wildcards=SimpleNamespace(run="tiny"), input=Inputs(inputs)
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run's outputs (weights, log, snapshots) and its population."""
    root = tmp_path_factory.mktemp("run")
    config = tiny_config()
    cfg = run_config(config, "tiny")
    from affine_icl.data import heldout_batches

    result = train(cfg, heldout_batches(cfg.data), checkpoint_root=root / "ckpt", progress=False)
    paths = {
        "weights": root / "model.safetensors",
        "log": root / "train_log.parquet",
        "snapshots": root / "snapshots",
    }
    save_outputs(result, paths["weights"], root / "optimizer.pt", paths["log"], paths["snapshots"])
    paths["population"] = root / "eval_population.parquet"
    write_parquet(population_table(cfg.data), paths["population"], {"data_config": repr(cfg.data)})
    return config, {k: str(v) for k, v in paths.items()}


def test_inputs_of_the_runs_config_pass(trained):
    config, paths = trained
    check_provenance(job(config, **paths))


def test_weights_of_an_older_setting_are_refused_naming_file_hashes_and_rule(trained):
    config, paths = trained
    changed = tiny_config(lr=2e-3)
    old, new = run_config(config, "tiny").hash(), run_config(changed, "tiny").hash()
    with pytest.raises(StaleInput) as info:
        check_provenance(job(changed, weights=paths["weights"]))
    message = str(info.value)
    assert "\n" not in message
    assert paths["weights"] in message and old in message and new in message
    assert "snakemake --forcerun train" in message
    with pytest.raises(StaleInput, match="train_log.parquet was made from a model trained"):
        check_provenance(job(changed, train_log=paths["log"]))


def test_a_longer_run_of_the_same_training_keeps_its_snapshots_but_not_its_weights(trained):
    config, paths = trained
    longer = tiny_config(steps=80)
    check_provenance(job(longer, snapshots=paths["snapshots"]))  # same trajectory
    with pytest.raises(StaleInput):
        check_provenance(job(longer, weights=paths["weights"]))
    shorter = tiny_config(steps=30)  # the step-40 snapshot lies beyond it
    with pytest.raises(StaleInput, match=r"step-000000040.safetensors is a snapshot .* step 40"):
        check_provenance(job(shorter, snapshots=paths["snapshots"]))


def test_snapshots_are_known_by_their_metadata_not_their_file_names(trained, tmp_path):
    config, paths = trained
    renamed = tmp_path / "snapshots"
    shutil.copytree(paths["snapshots"], renamed)
    (renamed / "step-000000020.safetensors").rename(renamed / "step-000000030.safetensors")
    steps = weights_by_step(renamed, paths["weights"])
    assert sorted(steps) == [20, 40]
    assert steps[20].name == "step-000000030.safetensors"
    # a snapshot of another training, copied in, is refused
    other = tiny_config(lr=2e-3)
    with pytest.raises(StaleInput, match="is a snapshot of training"):
        check_provenance(job(other, snapshots=str(renamed)))


def test_a_population_of_other_data_settings_is_refused(trained):
    config, paths = trained
    changed = copy.deepcopy(config)
    changed["data"]["norm_range"] = [1.0, 3.0]
    validate_config(changed)
    with pytest.raises(StaleInput, match=r"eval_population.parquet was drawn with other data"):
        check_provenance(job(changed, population=paths["population"]))


def test_outputs_record_the_code_that_wrote_them(trained):
    _, paths = trained
    meta = read_metadata(paths["weights"])
    assert meta["code_hash"] == provenance.library_hash()
    assert meta["code_commit"] == provenance.git_commit() != ""
    snapshot = sorted(
        read_metadata(p) for p in [paths["snapshots"] + "/step-000000020.safetensors"]
    )
    assert snapshot[0]["code_hash"] == provenance.library_hash()


def test_a_scripts_code_hash_follows_the_modules_it_imports(tmp_path, monkeypatch):
    """Edit a module a script imports (through other modules too): its hash changes; edit one
    it does not import: it stays."""
    package = tmp_path / "affine_icl"
    shutil.copytree(provenance.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE", package)
    for cached in (provenance._graph, provenance.script_code_hash, provenance.library_hash):
        cached.cache_clear()
    script = REPO / "scripts" / "generate_data.py"
    imported = provenance.imported_modules(script)
    assert {"config", "data", "tasks"} <= set(imported)  # tasks: through data
    assert "checkpoints" not in imported and "steps" not in imported
    before = provenance.script_code_hash(script), provenance.library_hash()

    def edited(module: str) -> tuple[str, str]:
        with open(package / module, "a") as fh:
            fh.write("\n# an edit\n")
        for cached in (provenance.script_code_hash, provenance.library_hash):
            cached.cache_clear()
        return provenance.script_code_hash(script), provenance.library_hash()

    after_steps = edited("steps.py")
    assert after_steps[0] == before[0] and after_steps[1] != before[1]
    after_tasks = edited("tasks/base.py")
    assert after_tasks[0] != before[0]
    for cached in (provenance._graph, provenance.script_code_hash, provenance.library_hash):
        cached.cache_clear()
