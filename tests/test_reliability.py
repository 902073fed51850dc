"""Bad input, tried and asserted: each case must fail with one line that names the problem,
and lose nothing already produced. The number of cases checked is printed at the end."""

import copy
import math

import pytest
import yaml
from conftest import REPO, dry_run, record_bad_input

from affine_icl.checkpoints import checkpoint_dir, latest_checkpoint
from affine_icl.config import ConfigError
from affine_icl.data import batches_from_table, population_table
from affine_icl.model import load_model
from affine_icl.rules import check_same_config
from affine_icl.train import TrainingDiverged, train
from affine_icl.validation import SCHEMA_PATH, validate_config

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def leaves(schema, path=()):
    """(dotted key, leaf schema) for every scalar or array key the schema declares."""
    if "$ref" in schema:
        schema = {**SCHEMA["$defs"][schema["$ref"].split("/")[-1]], **schema}
    if schema.get("type") == "object" and "properties" in schema:
        for key, sub in schema["properties"].items():
            yield from leaves(sub, (*path, key))
    elif path and path[0] not in ("runs", "claims"):
        yield ".".join(path), schema


def wrong_values(schema):
    """Values of the wrong type, and out-of-range values where the schema has bounds."""
    kind = schema.get("type")
    values = [("wrong type", {"string": 12, "boolean": "yes"}.get(kind, "not-a-number"))]
    if kind == "array" and schema.get("minItems", 0) > 1:
        values.append(("too short", [1] * (schema["minItems"] - 1)))
    for bound in ("minimum", "exclusiveMinimum"):
        if bound in schema:
            values.append(("below range", schema[bound] - 1))
    return values


CASES = [(key, why, value) for key, leaf in leaves(SCHEMA) for why, value in wrong_values(leaf)]


def with_value(dotted, value):
    config = copy.deepcopy(DEFAULT)
    *parents, key = dotted.split(".")
    node = config
    for p in parents:
        node = node.setdefault(p, {})
    node[key] = value
    return config


@pytest.mark.parametrize("key,why,value", CASES, ids=[f"{k}-{w}" for k, w, _ in CASES])
def test_every_config_key_rejects_bad_values(key, why, value):
    config = with_value(key, value)
    before = copy.deepcopy(config)
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert "\n" not in message and message.startswith("invalid config: ")
    assert key.split(".")[0] in message  # names (at least) the section of the key
    assert config.keys() == before.keys()
    record_bad_input(f"config {key} ({why})")


def test_enough_keys_are_covered():
    keys = {k for k, _, _ in CASES}
    assert len(keys) >= 30
    assert {"train.lr", "data.length_range", "model.n_ctx", "resources.train.gpu"} <= keys


def test_config_that_overflows_the_context_window():
    with pytest.raises(ConfigError, match="maximum length 14 exceeds model.n_ctx 12"):
        validate_config(with_value("model.n_ctx", 12))
    record_bad_input("context-window overflow")


def test_missing_and_unreadable_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"weights file .*nope.safetensors does not exist"):
        load_model(tmp_path / "nope.safetensors")
    record_bad_input("missing weights file")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"cannot read weights file .*bad.safetensors"):
        load_model(bad)
    assert bad.read_bytes() == b"not a safetensors file"  # nothing overwritten
    record_bad_input("unreadable weights file")


def test_activation_cache_from_another_config_is_refused(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"cache.parquet was written by config aaa, but the model "
        r"is config bbb; rerun",
    ):
        check_same_config(
            tmp_path / "cache.parquet", {"config_hash": "aaa"}, {"config_hash": "bbb"}
        )
    record_bad_input("activation cache of another config")


def test_nan_in_a_batch_stops_training_naming_the_step(tiny_run_cfg, tmp_path, monkeypatch):
    from affine_icl.data import TrainingStream

    real = TrainingStream.step

    def poisoned(self, step):
        lengths, device_lengths, terms = real(self, step)
        if step == 32:  # the 33rd step
            terms = terms.clone()
            terms[0, 0, 1, 0] = math.nan
        return lengths, device_lengths, terms

    monkeypatch.setattr(TrainingStream, "step", poisoned)
    batches = batches_from_table(population_table(tiny_run_cfg.data))
    with pytest.raises(TrainingDiverged) as info:
        train(tiny_run_cfg, batches, checkpoint_root=tmp_path, progress=False)
    assert "\n" not in str(info.value)
    assert "loss is nan at step 33" in str(info.value)
    # the good checkpoint of step 20 is kept, nothing after the NaN was written
    assert latest_checkpoint(checkpoint_dir(tmp_path, tiny_run_cfg)).name == "step-000000020"
    record_bad_input("NaN in a training batch")


NON_FINITE_OR_NOT_INTEGRAL = [
    ("data.init_range", [math.nan, 2.0], "data.init_range[0]: nan is not a finite number"),
    ("train.lr", math.inf, "train.lr: inf is not a finite number"),
    ("data.c_range", [-2.0, math.inf], "data.c_range[1]: inf is not a finite number"),
    ("train.log_every", 20.0, "train.log_every: 20.0 is not an integer (write 20)"),
    ("analysis.residual_dims", [0, 1.0], "analysis.residual_dims[1]: 1.0 is not an integer"),
]


@pytest.mark.parametrize(
    "key,value,message",
    NON_FINITE_OR_NOT_INTEGRAL,
    ids=[k for k, _, _ in NON_FINITE_OR_NOT_INTEGRAL],
)
def test_non_finite_and_non_integral_values_are_rejected(key, value, message):
    """JSON schema lets these through (a NaN passes every bound; 20.0 counts as an integer)."""
    with pytest.raises(ConfigError) as info:
        validate_config(with_value(key, value))
    assert "\n" not in str(info.value)
    assert message in str(info.value)
    record_bad_input(f"config {key} = {value}")


def test_a_run_override_that_is_not_finite_names_the_run():
    config = copy.deepcopy(DEFAULT)
    config["runs"] = [{"name": "fast", "seed": 0, "train": {"lr": math.nan}}]
    with pytest.raises(ConfigError, match=r"runs\[fast\].*train.lr: nan is not a finite number"):
        validate_config(config)
    record_bad_input("NaN in a run's override")


def test_batched_runs_with_one_seed_or_colliding_rule_names_are_rejected():
    config = copy.deepcopy(DEFAULT)
    config["train_batched"] = True
    config["runs"] = [{"name": "a", "seed": 1}, {"name": "b", "seed": 1}]
    same = "runs: 'a' and 'b' would train the same model"
    with pytest.raises(ConfigError, match=same):
        validate_config(copy.deepcopy(config))
    config["train_batched"] = False  # one after another too: one model counted twice
    with pytest.raises(ConfigError, match=same):
        validate_config(copy.deepcopy(config))
    config["train_batched"] = True
    config["runs"] = [
        {"name": "x-y", "seed": 1},
        {"name": "x_y", "seed": 2, "train": {"lr": 1e-3}},
    ]
    with pytest.raises(ConfigError, match="give the same rule name 'train_x_y'"):
        validate_config(config)
    record_bad_input("batched runs on one seed")
    record_bad_input("batched rule names that collide")


@pytest.mark.parametrize(
    "given,expected",
    [
        ({"train": {"steps": "2000"}}, {"steps": 2000}),
        ({"train": {"lr": "1e-3", "steps": "+30"}}, {"lr": 1e-3, "steps": 30}),
        ({"data": {"length_range": ["4", "14"]}}, {"length_range": [4, 14]}),
        ({"runs": [{"name": "a", "seed": "4", "train": {"steps": "50"}}]}, {"seed": 4}),
    ],
)
def test_command_line_strings_get_the_schema_types(given, expected):
    """What `snakemake --config train='{steps: 2000}'` passes: every nested value a string."""
    from affine_icl.validation import coerce_command_line

    config = copy.deepcopy(DEFAULT)
    for key, value in given.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    coerce_command_line(config, given)
    validate_config(config)
    section = config[next(iter(given))]
    found = section[0] if isinstance(section, list) else section
    assert {k: found[k] for k in expected} == expected
    assert all(type(found[k]) is type(v) for k, v in expected.items())


def test_command_line_strings_that_do_not_parse_are_still_rejected():
    from affine_icl.validation import coerce_command_line

    config = copy.deepcopy(DEFAULT)
    config["train"] = {**config["train"], "steps": "many", "lr": "nan"}
    coerce_command_line(config, {"train": {"steps": "many", "lr": "nan"}})
    with pytest.raises(ConfigError, match="train.steps: 'many' is not of type 'integer'"):
        validate_config(copy.deepcopy(config))
    config["train"]["steps"] = 10
    with pytest.raises(ConfigError, match="train.lr: nan is not a finite number"):
        validate_config(config)
    record_bad_input("unparsable --config value")


@pytest.mark.parametrize("setting", ["train={steps: 2000}", "train={lr: 1e-3, steps: 500}"])
def test_the_readmes_config_spellings_plan_a_dag(setting, tmp_path):
    """The override spelled as config.yaml's header shows it, through real Snakemake."""
    assert "Job stats" in dry_run(tmp_path, "--config", setting)
