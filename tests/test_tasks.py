"""The task families of the paper's future work (affine_icl/tasks.py): known answers by
construction, the affine task unchanged bit for bit, and where each run's data live."""

import copy

import pytest
import torch
import yaml

from affine_icl import tasks
from affine_icl.config import (
    REPO_ROOT,
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    validate_config,
)
from affine_icl.data import TrainingStream, population_table, sample_batch

FAMILIES = {
    "affine": DataConfig(),
    "linear2": DataConfig(task="linear", order=2),
    "linear3": DataConfig(task="linear", order=3),
    "diagonal": DataConfig(task="diagonal"),
    "polynomial2": DataConfig(task="polynomial", degree=2),
    "polynomial3": DataConfig(task="polynomial", degree=3, c_range=(-1.0, 1.0)),
}


def _paper_sampler(cfg, batch_size, length, generator):
    """The affine sampler as it was before the task families (frozen copy, for bit equality)."""
    lo, hi = cfg.init_range
    a0 = torch.rand((batch_size, cfg.vector_dim), generator=generator) * (hi - lo) + lo
    d = torch.rand((batch_size, cfg.vector_dim), generator=generator) * (hi - lo) + lo
    c = torch.rand((batch_size,), generator=generator) * (cfg.c_range[1] - cfg.c_range[0])
    c = c + cfg.c_range[0]
    n_lo, n_hi = cfg.norm_range
    target = torch.rand((batch_size,), generator=generator) * (n_hi - n_lo) + n_lo
    terms = [a0]
    for _ in range(length):
        terms.append(c[..., None] * terms[-1] + d)
    raw = torch.stack(terms, dim=-2)
    scale = raw[:, :length].norm(dim=-1).amax(dim=-1) / target
    return raw / scale[:, None, None], c, d / scale[:, None], scale


def test_the_affine_task_is_unchanged_bit_for_bit():
    for length in (3, 14):
        new = sample_batch(DataConfig(), 500, length, torch.Generator().manual_seed(4))
        old = _paper_sampler(DataConfig(), 500, length, torch.Generator().manual_seed(4))
        for a, b in zip((new.terms, new.c, new.d, new.scale), old, strict=True):
            assert torch.equal(a, b)
        assert torch.equal(new.coefs, new.c[:, None])
    # the paper's run keeps its checkpoints: the hash its results/checkpoints/seed0/ carries
    assert RunConfig(model=ModelConfig(init="transformer_lens")).hash() == "7348de03a261092c"
    assert "coefs" not in population_table(DataConfig(eval_per_length=4)).column_names


@pytest.mark.parametrize("name", FAMILIES)
def test_every_sequence_satisfies_its_recurrence_before_and_after_normalisation(name):
    cfg = FAMILIES[name]
    k = tasks.n_initial(cfg)
    raw, coefs, d = tasks.draw_raw(cfg, (3000,), 14, torch.Generator().manual_seed(1))
    batch = sample_batch(cfg, 3000, 14, torch.Generator().manual_seed(2))
    for terms, c, dd in ((raw, coefs, d), (batch.terms, batch.coefs, batch.d)):
        assert terms.isfinite().all()
        terms64, c64, d64 = terms.double(), c.double(), dd.double()
        for n in range(k, 15):
            predicted = tasks.next_term(cfg, terms64[:, n - k : n], c64, d64)
            size = terms64[:, : n + 1].abs().amax(dim=(1, 2), keepdim=True)[:, 0]
            assert ((predicted - terms64[:, n]).abs() / size).max() < 1e-5, (name, n)
    # the coefficients are drawn from c_range (as drawn, before normalisation)
    assert coefs.min() >= cfg.c_range[0] and coefs.max() <= cfg.c_range[1]
    assert coefs.shape == (3000, tasks.n_coefs(cfg))
    assert torch.allclose(batch.c, tasks.summary_c(cfg, batch.coefs))


def test_no_family_ever_produces_nan_or_inf_at_the_longest_length():
    for name, cfg in FAMILIES.items():
        stream = TrainingStream(cfg, 16, [0, 1], "cpu")
        for step in (0, 100, 200):
            _, _, terms = stream.step(step)
            assert terms.isfinite().all(), name
        raw, _, _ = tasks.draw_raw(cfg, (20_000,), 14, torch.Generator().manual_seed(3))
        assert raw.isfinite().all(), name
        if cfg.task == "polynomial":
            assert raw.abs().max() <= tasks.POLYNOMIAL_BOUND


def test_redrawn_sequences_are_seeded():
    cfg = FAMILIES["polynomial2"]
    a = tasks.draw_raw(cfg, (500,), 14, torch.Generator().manual_seed(9))
    b = tasks.draw_raw(cfg, (500,), 14, torch.Generator().manual_seed(9))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_ranges_no_sequence_can_satisfy_are_named():
    cfg = DataConfig(task="polynomial", degree=2, c_range=(5.0, 6.0), init_range=(5.0, 6.0))
    with pytest.raises(ValueError, match=r"narrow data.c_range \[5.0, 6.0\]"):
        tasks.draw_raw(cfg, (10,), 14, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", FAMILIES)
def test_least_squares_recovers_the_coefficients_exactly_on_noise_free_data(name):
    cfg = FAMILIES[name]
    raw, coefs, d = tasks.draw_raw(cfg, (200,), 14, torch.Generator().manual_seed(5))
    k = tasks.n_initial(cfg)
    coefs, d = coefs.double(), d.double()  # the same recurrence, noise-free in float64
    raw = tasks.recurrence_terms(cfg, raw[:, :k].double(), coefs, d, 14)
    # rescale so every sequence is O(1) (a normalised sequence); coefficients follow
    scale = raw.abs().amax(dim=(1, 2))
    terms = raw / scale[:, None, None]
    coefs = tasks.normalised_coefs(cfg, coefs, scale)
    fitted, fitted_d = tasks.fit(cfg, terms)
    assert torch.allclose(fitted, coefs, atol=1e-8), name
    assert torch.allclose(fitted_d, d / scale[:, None], atol=1e-8), name
    predicted = tasks.least_squares(cfg, terms)
    assert predicted[:, :k].isnan().all()  # no equation yet
    first = k + 1  # the first output the terms seen determine
    error = (predicted[:, first:-1] - terms[:, first + 1 :]).abs().max()
    assert error < 1e-8, name


def test_least_squares_is_the_plain_fit_where_it_is_easy_to_check():
    # a_n = 0.5 a_(n-1) + 1 in one dimension, by hand: c = 0.5, d = 1 from a_0..a_2
    cfg = DataConfig(vector_dim=1)
    terms = torch.tensor([[[2.0], [2.0], [2.0], [2.0]]])  # a fixed point: c is not identified
    predicted = tasks.least_squares(cfg, terms)
    assert torch.allclose(predicted[0, 1:, 0], torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64))
    terms = torch.tensor([[[0.0], [1.0], [1.5], [1.75]]])
    coefs, d = tasks.fit(cfg, terms[:, :3])
    assert coefs.item() == pytest.approx(0.5) and d.item() == pytest.approx(1.0)


def _config(**runs):
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    # one seed each: two runs of one model are refused (lin_a and lin_b share their settings)
    config["runs"] = [
        {"name": name, "seed": i, **entry} for i, (name, entry) in enumerate(runs.items())
    ]
    validate_config(config)
    return config


def test_each_task_gets_its_own_population_and_runs_of_a_task_share_it():
    linear = {"data": {"task": "linear", "order": 2, "length_range": [4, 14]}}
    linear["train"] = {"loss_from_index": 3}
    config = _config(
        paper={},
        lin_a=linear,
        lin_b=copy.deepcopy(linear),
        diag={"data": {"task": "diagonal"}},
        narrow={"data": {"c_range": [-1.0, 1.0]}},
    )
    keys = {run: tasks.population_key(config, run) for run in ("paper", "lin_a", "lin_b")}
    assert keys["paper"] is None  # results/data/eval_population.parquet, as before
    assert keys["lin_a"] == keys["lin_b"] and keys["lin_a"].startswith("linear2-")
    assert tasks.population_key(config, "diag").startswith("diagonal-")
    assert tasks.population_key(config, "narrow").startswith("affine-")  # other ranges


def test_a_linear_run_must_train_from_an_output_its_terms_determine():
    with pytest.raises(
        ConfigError,
        match=r"runs\[lin\]: train.loss_from_index: 2 .* first "
        r"predictable output index of the linear task of order 3 is 4",
    ):
        _config(lin={"data": {"task": "linear", "order": 3}})
    with pytest.raises(ConfigError, match=r"runs\[x\]: data.task: 'cubic' is not one of"):
        _config(x={"data": {"task": "cubic"}})


def test_configs_tasks_yaml_is_valid_and_has_one_run_per_family():
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    config.update(yaml.safe_load((REPO_ROOT / "configs" / "tasks.yaml").read_text()))
    validate_config(config)
    from affine_icl.config import run_config

    found = {tasks.label(run_config(config, e["name"]).data) for e in config["runs"]}
    assert found == {"affine", "linear2", "linear3", "diagonal", "polynomial2"}
