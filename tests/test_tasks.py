"""The task families of the paper's future work (affine_icl/tasks/): each family one class of
the Task protocol, with known answers by construction (its sequences satisfy its next term, its
fit is exact where identifiable), the affine task unchanged bit for bit, and where each run's
data live."""

import copy

import pytest
import torch
import yaml

from affine_icl import tasks
from affine_icl.claims.registry import CLAIM_IDS, CLAIMS
from affine_icl.config import ConfigError, DataConfig, ModelConfig, RunConfig
from affine_icl.data import TrainingStream, population_table, sample_batch
from affine_icl.families import FAMILIES, Family
from affine_icl.tasks import TASKS, Task, task_of
from affine_icl.validation import REPO_ROOT, SCHEMA_PATH, validate_config

CONFIGS = {
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


@pytest.mark.parametrize("name", CONFIGS)
def test_every_sequence_satisfies_its_recurrence_before_and_after_normalisation(name):
    cfg = CONFIGS[name]
    task = task_of(cfg)
    k = task.n_initial
    raw, coefs, d = task.draw_raw((3000,), 14, torch.Generator().manual_seed(1))
    batch = sample_batch(cfg, 3000, 14, torch.Generator().manual_seed(2))
    for terms, c, dd in ((raw, coefs, d), (batch.terms, batch.coefs, batch.d)):
        assert terms.isfinite().all()
        terms64, c64, d64 = terms.double(), c.double(), dd.double()
        for n in range(k, 15):
            predicted = task.next_term(terms64[:, n - k : n], c64, d64)
            size = terms64[:, : n + 1].abs().amax(dim=(1, 2), keepdim=True)[:, 0]
            assert ((predicted - terms64[:, n]).abs() / size).max() < 1e-5, (name, n)
    # the coefficients are drawn from c_range (as drawn, before normalisation)
    assert coefs.min() >= cfg.c_range[0] and coefs.max() <= cfg.c_range[1]
    assert coefs.shape == (3000, task.n_coefs)
    assert torch.allclose(batch.c, task.summary_c(batch.coefs))


def test_no_family_ever_produces_nan_or_inf_at_the_longest_length():
    for name, cfg in CONFIGS.items():
        stream = TrainingStream(cfg, 16, [0, 1], "cpu")
        for step in (0, 100, 200):
            _, _, terms = stream.step(step)
            assert terms.isfinite().all(), name
        task = task_of(cfg)
        raw, _, _ = task.draw_raw((20_000,), 14, torch.Generator().manual_seed(3))
        assert raw.isfinite().all(), name
        if task.redraw_beyond is not None:  # polynomial: POLYNOMIAL_BOUND
            assert raw.abs().max() <= task.redraw_beyond, name


def test_redrawn_sequences_are_seeded():
    task = task_of(CONFIGS["polynomial2"])
    a = task.draw_raw((500,), 14, torch.Generator().manual_seed(9))
    b = task.draw_raw((500,), 14, torch.Generator().manual_seed(9))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_ranges_no_sequence_can_satisfy_are_named():
    cfg = DataConfig(task="polynomial", degree=2, c_range=(5.0, 6.0), init_range=(5.0, 6.0))
    with pytest.raises(ValueError, match=r"narrow data.c_range \[5.0, 6.0\]"):
        task_of(cfg).draw_raw((10,), 14, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="c can only be fixed for the affine task"):
        task_of(CONFIGS["linear2"]).draw_raw((2,), 4, torch.Generator(), c=torch.zeros(2))


def _noise_free(task: Task, n: int, seed: int):
    """``n`` sequences of ``task`` in float64 (noise-free), each rescaled to O(1) as a normalised
    sequence is, with the coefficients and ``d`` of the recurrence they satisfy."""
    raw, coefs, d = task.draw_raw((n,), 14, torch.Generator().manual_seed(seed))
    coefs, d = coefs.double(), d.double()  # the same recurrence, noise-free in float64
    raw = task.recurrence_terms(raw[:, : task.n_initial].double(), coefs, d, 14)
    scale = raw.abs().amax(dim=(1, 2))
    return raw / scale[:, None, None], task.normalised_coefs(coefs, scale), d / scale[:, None]


@pytest.mark.parametrize("name", CONFIGS)
def test_least_squares_recovers_the_coefficients_exactly_on_noise_free_data(name):
    task = task_of(CONFIGS[name])
    terms, coefs, d = _noise_free(task, 200, 5)
    fitted, fitted_d = task.fit(terms)
    assert torch.allclose(fitted, coefs, atol=1e-8), name
    assert torch.allclose(fitted_d, d, atol=1e-8), name
    predicted = task.least_squares(terms)
    k, first = task.n_initial, task.first_exact  # the first output the terms seen determine
    assert predicted[:, :k].isnan().all()  # no equation yet
    error = (predicted[:, first:-1] - terms[:, first + 1 :]).abs().max()
    assert error < 1e-8, name
    # identifiability: one output earlier the terms do not determine the recurrence yet
    size = terms[:, : k + 2].abs().amax(dim=(1, 2))
    relative = (predicted[:, k] - terms[:, k + 1]).abs().amax(-1) / size
    assert first == k + 1 and relative.median() > 1e-2, name


def test_least_squares_is_the_plain_fit_where_it_is_easy_to_check():
    # a_n = 0.5 a_(n-1) + 1 in one dimension, by hand: c = 0.5, d = 1 from a_0..a_2
    cfg = DataConfig(vector_dim=1)
    terms = torch.tensor([[[2.0], [2.0], [2.0], [2.0]]])  # a fixed point: c is not identified
    predicted = tasks.least_squares(cfg, terms)  # the module's function: task_of(cfg)'s
    assert torch.allclose(predicted[0, 1:, 0], torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64))
    terms = torch.tensor([[[0.0], [1.0], [1.5], [1.75]]])
    coefs, d = task_of(cfg).fit(terms[:, :3])
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


# --------------------------------------------------------------------------- the Task protocol


def test_each_family_is_one_class_under_the_names_the_config_and_schema_know():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    enum = schema["properties"]["data"]["properties"]["task"]["enum"]
    assert list(FAMILIES) == enum and set(TASKS) == set(enum)
    for name, cls in TASKS.items():
        task = task_of(name)
        assert type(task) is cls and task.name == name and task.family is FAMILIES[name]
        assert task_of(DataConfig(task=name)).label == tasks.label(DataConfig(task=name))
    assert [t.label for t in map(task_of, CONFIGS.values())] == list(CONFIGS)
    with pytest.raises(ValueError, match=r"'cubic' is not one of"):
        task_of("cubic")
    with pytest.raises(ValueError, match="is the linear task, not 'affine'"):
        tasks.Linear(DataConfig())


def test_the_claims_a_family_predicts_apply_to_that_family_alone():
    """Every claim a family predicts is in the claims registry, no two families predict one
    claim, and a claim applies to a run of a family exactly when no family predicts it or that
    family does (Claim.applies_to reads the families, which hold the list)."""
    predicted = [c for cls in TASKS.values() for c in cls.predicted_claims]
    assert set(predicted) <= set(CLAIM_IDS) and len(predicted) == len(set(predicted))
    by_id = {c.id: c for c in CLAIMS}
    applies = {c: [n for n in TASKS if by_id[c].applies_to(n)] for c in by_id}
    assert applies["layer2_checkerboard"] == ["affine"]  # alternation needs one scalar c < 0
    assert applies["linear_offset_heads"] == ["linear"]
    assert applies["diagonal_no_checkerboard"] == ["diagonal"]
    assert applies["polynomial_mlp_positions"] == ["polynomial"]
    assert applies["final_mse"] == list(TASKS)
    unpredicted = set(CLAIM_IDS) - set(predicted)
    assert all(applies[c] == list(TASKS) for c in unpredicted)


def test_alternates_says_whether_c1_below_zero_makes_every_component_alternate():
    """The checkerboard notion (Figs 5/6): a sequence alternates when the steps a_(n+1) - a_n
    change sign at every step in every component. For the affine family ``c < 0`` implies it
    (a_(n+1) - a_n = c (a_n - a_(n-1))); for the others ``c_1 < 0`` does not."""
    for name, cfg in CONFIGS.items():
        task = task_of(cfg)
        terms, coefs, _ = _noise_free(task, 2000, 6)
        picked = task.summary_c(coefs) < -0.5  # as analysis.pick_c_threshold picks them
        steps = terms[picked].diff(dim=1)[:, :10]
        alternating = (steps[:, 1:] * steps[:, :-1] < 0).flatten(1).all(1).double().mean()
        assert (alternating == 1) if task.alternates else (alternating < 0.9), name
    assert [n for n, cls in TASKS.items() if cls.alternates] == ["affine"]


def test_a_new_family_is_one_class():
    """A family needs its settings (a Family), its recurrence's step and, where they are not the
    previous term, its regressors: drawing, redrawing, the fit and identifiability follow."""

    class Reversed(Task):
        """``a_n = c rev(a_(n-1)) + d``: the previous term with its components reversed."""

        family = Family("reversed")
        recurrence = "a_n = c rev(a_(n-1)) + d"
        n_coefs = 1

        def next_term(self, history, coefs, d):
            return coefs[..., 0, None] * history[..., -1, :].flip(-1) + d

        def features(self, terms, n):
            return terms[..., n - 1, :].flip(-1)[..., None]

    try:
        task = task_of(DataConfig(task="reversed"))
        assert isinstance(task, Reversed) and task.label == "reversed"
        terms, coefs, d = _noise_free(task, 50, 7)
        assert (terms[:, 1] - task.next_term(terms[:, :1], coefs, d)).abs().max() < 1e-12
        fitted, _ = task.fit(terms)
        assert torch.allclose(fitted, coefs, atol=1e-8)
        error = task.least_squares(terms)[:, task.first_exact : -1] - terms[:, 3:]
        assert error.abs().max() < 1e-8
    finally:
        del TASKS["reversed"]
