"""config.yaml validation: schema via snakemake.utils.validate plus cross-key rules."""

import copy
import re

import pytest
import yaml
from conftest import REPO, dry_run

from affine_icl.config import (
    ConfigError,
    ModelConfig,
    RunConfig,
    TrainConfig,
    batch_groups,
    flat_settings,
    run_config,
)
from affine_icl.rule_settings import (
    check_resource_rules,
    rule_resources,
    setting_params,
    settings_from_params,
    weights_settings,
)
from affine_icl.validation import validate_config

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def validated(changes: dict) -> dict:
    config = copy.deepcopy(DEFAULT)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[key] = value
    validate_config(config)
    return config


def test_default_config_is_the_paper_protocol():
    config = validated({})
    cfg = run_config(config, "seed0")
    assert cfg == RunConfig()  # the dataclass defaults are the paper's values
    assert (cfg.model.d_model, cfg.model.n_heads, cfg.model.d_head) == (128, 8, 64)
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr) == (100_000, 16, 1e-4)
    assert cfg.data.length_range == (3, 14) and cfg.model.d_vocab == 40


def test_missing_sections_get_schema_defaults():
    config = {"runs": [{"name": "x", "seed": 1}]}
    validate_config(config)
    assert config["train"]["weight_decay"] == 0.01 and config["device"] == "auto"
    assert config["resources"]["train"]["threads"] == 2


# Each bad value, and the one line that must name it.
BAD = [
    ({"train.lr": "fast"}, "train.lr: 'fast' is not of type 'number'"),
    ({"train.steps": 2.5}, "train.steps: 2.5 is not of type 'integer'"),
    ({"train.batch_size": 0}, "train.batch_size: 0 is less than the minimum of 1"),
    ({"data.vector_dim": "40"}, "data.vector_dim: '40' is not of type 'integer'"),
    ({"data.colour": 3}, "data: unknown key 'colour'"),
    ({"trian": {}}, "<top level>: unknown key 'trian'"),
    (
        {"steps": 100},
        "<top level>: unknown key 'steps' (did you mean train.steps? on the command line: "
        "--config train='{steps: ...}')",
    ),
    ({"data.length_range": [2, 14]}, "data.length_range.0: 2 is less than the minimum of 3"),
    ({"data.length_range": [3, 40]}, "data.length_range: maximum length 40 exceeds model.n_ctx 32"),
    ({"data.length_range": [9, 5]}, "data.length_range: minimum 9 is larger than maximum 5"),
    ({"data.c_range": [1.0, -1.0]}, "data.c_range: lower bound 1.0 must be below upper bound -1.0"),
    ({"data.norm_range": [0.0, 2.0]}, "data.norm_range: lower bound 0.0 must be > 0"),
    ({"device": "gpu"}, "device: 'gpu' does not match"),
    ({"model.act_fn": "tanh"}, "model.act_fn: 'tanh' is not one of ['relu', 'gelu']"),
    (
        {"runs": [{"name": "a", "seed": 1}, {"name": "a", "seed": 2}]},
        "runs: run name 'a' appears more than once",
    ),
    ({"runs": [{"name": "a"}]}, "runs.0: 'seed' is a required property"),
    ({"runs": []}, "runs: [] should be non-empty"),
    (
        {"train.checkpoint_every": 150},
        "train.checkpoint_every: 150 must be a multiple of train.log_every 100",
    ),
    ({"train.loss_from_index": 3}, "train.loss_from_index: 3 leaves no target position"),
    (
        {"train.eval_per_length": 5000},
        "train.eval_per_length: 5000 exceeds the evaluation population",
    ),
    ({"resources.train.gpu": -1}, "resources.train.gpu: -1 is less than the minimum of 0"),
    (
        {"runs": [{"name": "w", "seed": 0, "model": {"d_mlp": 0}}]},
        "runs[w]: model.d_mlp: 0 is less than the minimum of 1",
    ),
    (
        {"runs": [{"name": "w", "seed": 0, "train": {"seed": 3}}]},
        "runs[w]: train: unknown key 'seed'",
    ),
    (
        {"runs": [{"name": "w", "seed": 0, "model": {"n_ctx": 5}}]},
        "runs[w]: data.length_range: maximum length 14 exceeds model.n_ctx 5",
    ),
    (
        {"runs": [{"name": "w", "seed": 0, "data": {"task": "cubic"}}]},
        "runs[w]: data.task: 'cubic' is not one of",
    ),
    ({"data.task": "linear"}, "data.task: 'linear' here would change the paper's task"),
    (
        {"runs": [{"name": "lin", "seed": 0, "data": {"task": "linear"}}]},
        "runs[lin]: train.loss_from_index: 2 trains on outputs the terms before them do not",
    ),
    ({"data.degree": 1}, "data.degree: 1 is less than the minimum of 2"),
]


@pytest.mark.parametrize("changes,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_config_gives_one_line_naming_the_key(changes, message):
    with pytest.raises(ConfigError) as info:
        validated(changes)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("invalid config: ")
    assert message in text


def test_run_overrides_change_their_run_only():
    config = validated(
        {
            "runs": [
                {"name": "a", "seed": 0},
                {"name": "wide", "seed": 1, "model": {"d_mlp": 1024}, "train": {"steps": 500}},
                {"name": "c", "seed": 2},
            ]
        }
    )
    a, wide, c = (run_config(config, r) for r in ("a", "wide", "c"))
    assert (wide.model.d_mlp, wide.train.steps, wide.train.seed) == (1024, 500, 1)
    assert wide.train.lr == a.train.lr and wide.model.d_model == a.model.d_model
    assert (a.model.d_mlp, a.train.steps) == (c.model.d_mlp, c.train.steps) == (3072, 100_000)
    assert config["runs"][1]["model"] == {"d_mlp": 1024}  # no defaults filled into an override
    assert batch_groups(config) == [["a", "c"], ["wide"]]
    # model.init decides only the initial weights: runs that differ in it train together
    config["runs"][2]["model"] = {"init": "torch"}
    assert batch_groups(validated(config)) == [["a", "c"], ["wide"]]


def test_d_model_need_not_equal_heads_times_d_head():
    """The paper's own model has 8 heads of 64 in d_model 128; per-head weights allow it."""
    validated({"model.d_model": 100, "model.n_heads": 3, "model.d_head": 7})


def test_snakemake_reports_bad_config_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: fast}\n")
    with pytest.raises(RuntimeError) as info:
        dry_run(tmp_path, "--configfile", str(bad))
    out = str(info.value)
    assert "invalid config: train.lr: 'fast' is not of type 'number'" in out
    assert "Job stats" not in out


def test_settings_become_one_named_param_per_key_and_back():
    """Snakemake prints the values of the params that changed: one param per key, each
    carrying its dotted name, makes a rerun reason name only the changed keys."""
    params = setting_params(flat_settings({"analysis": {"seed": 0, "residual_dims": (0, 1)}}))
    assert params == {
        "analysis__seed": {"analysis.seed": 0},
        "analysis__residual_dims": {"analysis.residual_dims": [0, 1]},
    }
    mixed = {**params, "loss_from": 2, "claims__x": {"claims.x": {"at_most": 1}}}
    assert settings_from_params(mixed, "analysis") == {"seed": 0, "residual_dims": [0, 1]}
    assert settings_from_params(mixed, "claims") == {"x": {"at_most": 1}}


def test_weights_settings_leave_out_the_cadence_and_agree_batched_or_alone():
    config = validated({"runs": [{"name": "a", "seed": 1}, {"name": "b", "seed": 2}]})
    alone = weights_settings(config, ["a"])
    assert alone["train.seed"] == 1 and alone["train.lr"] == 1e-4
    assert not {"train.log_every", "train.checkpoint_every", "data.eval_seed"} & set(alone)
    together = weights_settings(config, ["a", "b"])
    assert together["train.seed"] == {"a": 1, "b": 2}
    assert {k: v for k, v in together.items() if k != "train.seed"} == {
        k: v for k, v in alone.items() if k != "train.seed"
    }
    cadence = validated({"train.log_every": 50, "train.eval_every": 500, "data.eval_seed": 3})
    assert weights_settings(cadence, ["seed0"]) == weights_settings(validated({}), ["seed0"])


def test_cuda_graphs_takes_auto_on_off_in_any_yaml_spelling_and_keys_no_weights():
    """YAML 1.1 reads a bare on/off in a config file as true/false; ``--config`` values arrive
    as strings. Every spelling means the same, and none changes the weights settings."""
    from affine_icl.validation import coerce_command_line

    default = run_config(validated({}), "seed0")
    assert default.train.cuda_graphs == "auto"
    for value, meant in [("off", "off"), (False, "off"), ("on", "on"), (True, "on")]:
        cfg = run_config(validated({"train.cuda_graphs": value}), "seed0")
        assert cfg.train.cuda_graphs == meant and cfg.hash() == default.hash()
    assert weights_settings(validated({"train.cuda_graphs": "off"}), ["seed0"]) == (
        weights_settings(validated({}), ["seed0"])
    )
    given = {"train": yaml.load("{cuda_graphs: off}", Loader=yaml.BaseLoader)}
    config = copy.deepcopy(DEFAULT)
    coerce_command_line(config, given)
    validate_config(config)
    assert run_config(config, "seed0").train.cuda_graphs == "off"
    with pytest.raises(ConfigError, match="train.cuda_graphs: 'maybe' is not one of"):
        validated({"train.cuda_graphs": "maybe"})


def test_a_sweep_expands_into_named_runs_checked_like_hand_written_ones():
    config = validated(
        {
            "sweep": {
                "grid": {"model.d_model": [64, 128], "train.lr": [1e-4, 3e-4]},
                "seeds": [0, 1],
            }
        }
    )
    names = [entry["name"] for entry in config["runs"]]
    assert names[:3] == ["d_model64-lr0p0001-s0", "d_model64-lr0p0001-s1", "d_model64-lr0p0003-s0"]
    assert len(names) == len(set(names)) == 8
    wide = run_config(config, "d_model128-lr0p0003-s1")
    assert (wide.model.d_model, wide.train.lr, wide.train.seed) == (128, 3e-4, 1)
    # every expanded run is validated merged, and the error names it
    with pytest.raises(
        ConfigError,
        match=r"runs\[n_ctx4-s0\]: data.length_range: maximum length 14 exceeds model.n_ctx 4",
    ):
        validated({"sweep": {"grid": {"model.n_ctx": [4]}}})
    with pytest.raises(
        ConfigError, match=r"sweep.grid: 'train.seed' is not a setting a run may change"
    ):
        validated({"sweep": {"grid": {"train.seed": [1, 2]}}})
    with pytest.raises(ConfigError, match=r"sweep.grid: 'model.colour' is not a setting"):
        validated({"sweep": {"grid": {"model.colour": [1]}}})


def test_every_rule_takes_its_resources_from_config_over_the_default():
    config = validated(
        {"resources.default": {"mem_mb": 3000}, "resources.fig07_head_attribution": {"runtime": 2}}
    )
    shipped = DEFAULT["resources"]
    # a rule not named gets resources.default, with the schema's defaults for what it leaves out
    assert rule_resources(config, "fig09_layer0_ov_matrix") == {
        "threads": 1,
        "mem_mb": 3000,
        "runtime": shipped["default"]["runtime"],
    }
    # a named rule changes only what it names; gpu 0 asks for nothing
    assert rule_resources(config, "fig07_head_attribution") == {
        "threads": 1,
        "mem_mb": 3000,
        "runtime": 2,
    }
    # a GPU rule asks for its threads per GPU (Slurm --cpus-per-gpu)
    train = rule_resources(config, "train")
    assert train == {**shipped["train"], "cpus_per_gpu": shipped["train"]["threads"]}
    assert train["gpu"] == 1
    assert rule_resources(validated({"resources.train.gpu": 0}), "train")["threads"] == 2
    assert "gpu" not in rule_resources(validated({"resources.train.gpu": 0}), "train")
    # partitions too: the only place that reaches the batched training rules (train_<runs>)
    parts = validated(
        {
            "resources.default": {"slurm_partition": "cpu"},
            "resources.train": {"slurm_partition": "gpu"},
        }
    )
    assert rule_resources(parts, "fig07_head_attribution")["slurm_partition"] == "cpu"
    assert rule_resources(parts, "train")["slurm_partition"] == "gpu"


def test_a_resources_entry_that_names_no_rule_is_an_error_with_the_closest_rule():
    config = validated({"resources.cache_activation": {"mem_mb": 9000}})
    rules = [  # every rule config.yaml's resources name
        "train",
        "cache_activations",
        "measure_over_training",
        "measure_head_scores",
        "measure_mean_ablation",
    ]
    with pytest.raises(ConfigError) as info:
        check_resource_rules(config, rules)
    assert str(info.value) == (
        "invalid config: resources.cache_activation: no rule of that name "
        "(did you mean cache_activations?)"
    )
    # `default` and `train` are always valid (batched training rules are named train_<runs>)
    check_resource_rules(validated({}), ["train_a_b", *rules[1:]])
    with pytest.raises(ConfigError, match=r"resources.fig07_head_attribution.mem_mb: 0 is less"):
        validated({"resources.fig07_head_attribution": {"mem_mb": 0}})
    with pytest.raises(ConfigError, match=r"resources.measure_head_scores: unknown key 'memory'"):
        validated({"resources.measure_head_scores": {"memory": 10}})


def test_snakemake_gives_each_job_its_rules_resources_from_config(tmp_path):
    tiny = str(REPO / "tests" / "config" / "tiny.yaml")
    out = dry_run(
        tmp_path,
        "--configfile",
        tiny,
        "--config",
        "resources={fig07_head_attribution: {mem_mb: 9999, runtime: 3}}",
    )
    jobs = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":")[0]
        found = re.search(r"resources: (.*)", block)
        jobs.setdefault(rule, found[1] if found else "")
    assert "runtime=3, mem_mb=9999" in jobs["fig07_head_attribution"]
    assert "runtime=5, mem_mb=2000" in jobs["fig08_layer0_ov"]  # resources.default
    assert "runtime=10, mem_mb=3000" in jobs["cache_activations"]  # config.yaml names it
    with pytest.raises(RuntimeError, match=r"resources.fig07: no rule of that name \(did you"):
        dry_run(tmp_path, "--configfile", tiny, "--config", "resources={fig07: {mem_mb: 1}}")


def test_model_init_keys_the_weights_unless_it_is_the_init_of_every_earlier_run():
    runs = [
        {"name": "tl", "seed": 0, "model": {"init": "transformer_lens"}},
        {"name": "pt", "seed": 0},
    ]
    config = validated({"runs": runs})
    tl, pt = run_config(config, "tl"), run_config(config, "pt")
    assert tl.model.init == "transformer_lens" and pt.model.init == "torch"  # torch: the default
    # transformer_lens keeps the hash every run had before the setting existed
    assert tl.hash() == "7348de03a261092c" and "init" not in tl.weights_dict()["model"]
    assert pt.hash() != tl.hash() and pt.weights_dict()["model"]["init"] == "torch"
    # a recorded run_config reads back as the run, the init left out of it included
    assert RunConfig.from_dict(tl.to_dict()) == tl and RunConfig.from_dict(pt.to_dict()) == pt
    with pytest.raises(ConfigError, match=r"^invalid config: model.init: 'xavier' is not one of"):
        validated({"model.init": "xavier"})


def test_training_arithmetic_version_keys_every_run_from_version_2(monkeypatch):
    import affine_icl.config as config_module

    cfg = RunConfig(model=ModelConfig(init="transformer_lens"))
    assert config_module.TRAINING_ARITHMETIC == 1 and cfg.hash() == "7348de03a261092c"
    monkeypatch.setattr(config_module, "TRAINING_ARITHMETIC", 2)
    assert cfg.weights_dict()["training_arithmetic"] == 2
    assert cfg.hash() != "7348de03a261092c"


def test_trajectory_leaves_out_only_the_step_count():
    short = RunConfig(train=TrainConfig(steps=20_000))
    assert short.trajectory_hash() == RunConfig().trajectory_hash()
    assert short.hash() != RunConfig().hash()
    assert RunConfig(train=TrainConfig(lr=2e-4)).trajectory_hash() != RunConfig().trajectory_hash()


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"data.c_range": [-1000, 1000]}, "data.c_range"),
        ({"data.init_range": [-1e38, 1e38]}, "data.c_range"),  # the message names both
    ],
)
def test_ranges_whose_terms_float32_cannot_hold_are_rejected(changes, key):
    with pytest.raises(ConfigError, match=rf"^invalid config: {key}: .*past float32's 3.4e38"):
        validated(changes)
    validated({"data.c_range": [-100, 100]})  # 1e28 at length 14: representable


# Configs that passed validation and crashed later (issue: results true to their inputs), each
# now rejected up front in one line naming the key.
LATER_CRASHES = [
    ({"model.n_layers": 1}, "model.n_layers: 1 is less than the minimum of 2"),
    ({"data.eval_per_length": 1}, "data.eval_per_length: 1 is less than the minimum of 2"),
    ({"analysis.population_size": 1}, "analysis.population_size: 1 is less than the minimum of 2"),
    ({"data.c_range": [0.0, 2.0]}, "data.c_range: [0.0, 2.0] has no c below -0.5"),
    ({"data.c_range": [-2.0, 0.2]}, "data.c_range: [-2.0, 0.2] has no c above 0.5"),
    ({"sensitivity.factors": [0.5, 1, 1]}, "sensitivity.factors: [0.5, 1, 1] has non-unique"),
    ({"runs": [{"name": "a", "seed": 2**70}]}, "runs.0.seed: 1180591620717411303424 is greater"),
    ({"sweep": {"grid": {"train.lr": [1e-4]}, "seeds": [2**40]}}, "sweep.seeds.0: 1099511627776"),
    ({"runs": [{"name": "a\n", "seed": 0}]}, "runs: run name 'a\\n' may hold only letters"),
    ({"runs": [{"name": "a" * 260, "seed": 0}]}, "runs.0.name: 'aaaa"),
    ({"results": "/"}, "results: / would put every output at the file system's root"),
    (
        {"claims.layer0_ov_r2": {"within": [0.88, 0.78]}},
        "claims.layer0_ov_r2.within: [0.88, 0.78] runs high to low",
    ),
    (
        {"claims.final_mse": {"at_most": 1e-3, "differs_up_to": 1e-4}},
        "claims.final_mse.differs_up_to: 0.0001 must lie above at_most 0.001",
    ),
    (
        {"runs": [{"name": "a", "seed": 0}, {"name": "b", "seed": 0, "data": {"order": 3}}]},
        "runs: 'a' and 'b' would train the same model (same seed and weights settings",
    ),
    (
        {"sweep": {"grid": {"data.eval_seed": [1, 2]}, "seeds": [0]}},
        "sweep.grid: data.eval_seed changes no trained weight here",
    ),
    (
        {"sweep": {"grid": {"model.d_model": [64, 128], "data.order": [2, 3]}}},
        "sweep.grid: data.order changes no trained weight here",
    ),
]


@pytest.mark.parametrize(
    "changes,message", LATER_CRASHES, ids=[m.split(":")[0] for _, m in LATER_CRASHES]
)
def test_configs_that_crashed_later_are_rejected_before_any_job(changes, message):
    with pytest.raises(ConfigError) as info:
        validated(changes)
    text = str(info.value)
    assert "\n" not in text.rstrip("\n") and message in text, text


def test_a_criterion_from_a_config_file_replaces_the_default_whole(tmp_path):
    """Snakemake merges config files key by key, so config.yaml's at_most stayed beside the
    user's within and the schema's oneOf failed on keys the user never wrote."""
    user = tmp_path / "mine.yaml"
    user.write_text("claims:\n  final_mse: {within: [0, 1.0e-3]}\n")
    tiny = str(REPO / "tests" / "config" / "tiny.yaml")
    out = dry_run(tmp_path / "work", "--configfile", tiny, str(user), "--printshellcmds")
    assert "Job stats" in out


def test_a_sweep_reads_the_schema_once_and_checks_each_distinct_run_config_once(monkeypatch):
    """The schema was read twice per run (564 s for 1,600 runs); bench/validate_sweep.py
    times it."""
    import affine_icl.validation as config_module

    config_module._load_schema.cache_clear()
    config_module._validator.cache_clear()
    reads, checked = [], []
    real_load, real_validate = yaml.safe_load, config_module._validate
    monkeypatch.setattr(yaml, "safe_load", lambda text: reads.append(1) or real_load(text))
    monkeypatch.setattr(
        config_module,
        "_validate",
        lambda c, s, where: checked.append(where) or real_validate(c, s, where),
    )
    config = copy.deepcopy(DEFAULT)
    config["sweep"] = {
        "grid": {"model.d_model": [32, 64, 96, 128], "train.lr": [1e-4, 2e-4]},
        "seeds": list(range(5)),
    }
    validate_config(config)
    assert len(config["runs"]) == 40
    assert len(reads) == 1
    # the config, the expanded runs, and each of the 8 distinct overrides once (not 40)
    assert len(checked) == 2 + 8


def test_configs_quick_yaml_is_a_short_run_of_the_papers_model_under_its_own_results(tmp_path):
    out = dry_run(tmp_path, "--configfile", str(REPO / "configs" / "quick.yaml"))
    assert "results/quick/runs/seed0/model.safetensors" in out
    assert "results/runs/" not in out.replace("results/quick/runs/", "")
    quick = yaml.safe_load((REPO / "configs" / "quick.yaml").read_text())
    config = copy.deepcopy(DEFAULT)
    for section, values in quick.items():
        config[section] = {**config[section], **values} if isinstance(values, dict) else values
    validate_config(config)
    cfg = run_config(config, "seed0")
    assert cfg.train.steps == 2000 and cfg.model == RunConfig().model
