"""Bad input, tried and asserted: each case must fail with one line that names the problem,
and lose nothing already produced. The number of cases checked is printed at the end."""

import copy
import math

import pytest
import yaml
from conftest import REPO, record_bad_input

from affine_icl.config import SCHEMA_PATH, ConfigError, validate_config
from affine_icl.data import batches_from_table, population_table
from affine_icl.model import load_model
from affine_icl.rules import check_same_config
from affine_icl.train import TrainingDiverged, checkpoint_dir, latest_checkpoint, train

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
