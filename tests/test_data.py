"""The affine-recurrence sampler of section 3.1 and the Parquet population built from it."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from affine_icl.config import DataConfig
from affine_icl.data import (
    SEQUENCE_TYPES,
    STREAM_CHUNK,
    TrainingStream,
    batches_from_table,
    example_sequences,
    heldout_batches,
    population_table,
    sample_batch,
    write_parquet,
)

CFG = DataConfig()


@pytest.fixture(scope="module")
def batches():
    gen = torch.Generator().manual_seed(0)
    return [sample_batch(CFG, 2000, length, gen) for length in (3, 8, 14)]


def test_shapes_and_inputs_targets(batches):
    for batch in batches:
        L = batch.length
        assert batch.terms.shape == (2000, L + 1, 40)
        assert batch.inputs.shape == batch.targets.shape == (2000, L, 40)
        assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])


def test_max_input_norm_lies_in_norm_range(batches):
    for batch in batches:
        max_norm = batch.inputs.norm(dim=-1).amax(dim=1)
        assert max_norm.min() >= 1.0 - 1e-5 and max_norm.max() <= 2.0 + 1e-5
        # spread over the whole range, not a constant
        assert max_norm.min() < 1.05 and max_norm.max() > 1.95


def test_raw_draws_lie_in_paper_ranges(batches):
    for batch in batches:
        raw_a0 = batch.terms[:, 0] * batch.scale[:, None]
        raw_d = batch.d * batch.scale[:, None]
        for raw in (raw_a0, raw_d):
            assert raw.min() >= -2 - 1e-4 and raw.max() <= 2 + 1e-4
            assert raw.min() < -1.9 and raw.max() > 1.9
        assert batch.c.min() >= -2 and batch.c.max() <= 2
        assert batch.c.min() < -1.9 and batch.c.max() > 1.9


def test_recurrence_holds_after_normalisation(batches):
    for batch in batches:
        predicted = batch.c[:, None, None] * batch.terms[:, :-1] + batch.d[:, None]
        scale = batch.terms[:, 1:].abs().amax() + 1
        assert torch.allclose(predicted, batch.terms[:, 1:], atol=1e-5 * scale, rtol=1e-5)


def test_stream_lengths_uniform_over_range():
    stream = TrainingStream(CFG, 2, [1], "cpu")
    drawn = np.array([int(stream.step(s)[0][0]) for s in range(6000)])
    values, counts = np.unique(drawn, return_counts=True)
    assert list(values) == list(range(3, 15))
    assert counts.min() > 6000 / 12 * 0.8


def test_stream_batches_are_normalised_recurrences_padded_with_zeros():
    stream = TrainingStream(CFG, 8, [0, 5], "cpu")
    for step in (0, 1, STREAM_CHUNK + 3):
        lengths, device_lengths, terms = stream.step(step)
        assert terms.shape == (2, 8, 15, CFG.vector_dim) and torch.equal(lengths, device_lengths)
        for k, length in enumerate(lengths.tolist()):
            seqs = terms[k, :, : length + 1]
            assert torch.all(terms[k, :, length + 1 :] == 0)
            max_norm = seqs[:, :length].norm(dim=-1).amax(dim=1)
            assert torch.all((max_norm > 1 - 1e-5) & (max_norm < 2 + 1e-5))
            # a_{n+1} - a_n = c (a_n - a_{n-1}): a recurrence with one c per sequence
            diff = seqs[:, 1:] - seqs[:, :-1]
            c = (diff[:, 1:] * diff[:, :-1]).sum(-1) / diff[:, :-1].square().sum(-1)
            assert torch.allclose(c, c[:, :1].expand_as(c), atol=1e-3)


def test_stream_run_depends_only_on_its_seed_and_resumes_identically():
    alone = TrainingStream(CFG, 4, [5], "cpu")
    batched = TrainingStream(CFG, 4, [0, 5], "cpu")
    middle, end = STREAM_CHUNK + 7, 2 * STREAM_CHUNK - 1  # checkpoints inside a chunk, at its end
    saved, expected = {}, {}
    for step in range(3 * STREAM_CHUNK):
        a, b = alone.step(step), batched.step(step)
        assert a[0][0] == b[0][1] and torch.equal(a[2][0], b[2][1])
        expected[step] = b[2].clone()
        if step in (middle, end):
            saved[step] = [batched.run_state(k) for k in range(2)]
    for stop, states in saved.items():
        resumed = TrainingStream(CFG, 4, [0, 5], "cpu")
        resumed.load_run_states(states)
        for step in range(stop + 1, 3 * STREAM_CHUNK):
            assert torch.equal(resumed.step(step)[2], expected[step]), (stop, step)


def test_same_seed_same_data_other_seed_other_data():
    a = sample_batch(CFG, 4, 5, torch.Generator().manual_seed(9)).terms
    b = sample_batch(CFG, 4, 5, torch.Generator().manual_seed(9)).terms
    c = sample_batch(CFG, 4, 5, torch.Generator().manual_seed(10)).terms
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_population_round_trips_through_parquet(tmp_path):
    cfg = DataConfig(vector_dim=5, length_range=(3, 6), eval_per_length=7)
    table = population_table(cfg)
    assert table.num_rows == 4 * 7
    assert table.schema.field("d").type.list_size == 5
    path = tmp_path / "pop.parquet"
    write_parquet(table, path, {"note": "x"})
    assert pq.read_schema(path).metadata[b"note"] == b"x"
    batches = batches_from_table(pq.read_table(path))
    assert sorted(batches) == [3, 4, 5, 6]
    for length, batch in batches.items():
        assert batch.terms.shape == (7, length + 1, 5)
        predicted = batch.c[:, None, None] * batch.terms[:, :-1] + batch.d[:, None]
        assert torch.allclose(predicted, batch.terms[:, 1:], atol=1e-4)
    assert population_table(cfg).equals(table)  # seeded: identical on every call
    # training draws the held-out batches again instead of reading the file: the same tensors
    drawn = heldout_batches(cfg, per_length=2)
    assert drawn[4].terms.shape[0] == 2
    for length, batch in batches_from_table(pq.read_table(path), per_length=2).items():
        for field in ("terms", "c", "d", "scale"):
            assert torch.equal(getattr(drawn[length], field), getattr(batch, field)), field


def test_example_sequences_cover_the_three_regimes():
    table = example_sequences(CFG).to_pandas()
    per_type = table.groupby("sequence_type")["c"].first()
    assert len(per_type) == len(SEQUENCE_TYPES)
    for name, (lo, hi) in SEQUENCE_TYPES:
        assert lo <= per_type[name] <= hi
    assert len(table) == 3 * 15 * 40


@pytest.mark.parametrize("c", [30, 100])
def test_wide_coefficient_ranges_give_no_all_zero_sequences(c):
    """The float32 norm of terms near 1e19 overflowed and normalised them to zero (12% of
    length-14 sequences at c in [-30, 30], 72% at [-100, 100])."""
    from affine_icl.config import DataConfig
    from affine_icl.data import batches_from_table, population_table

    cfg = DataConfig(c_range=(-float(c), float(c)), eval_per_length=100)
    terms = batches_from_table(population_table(cfg))[14].terms
    inputs = terms[:, :14]
    assert torch.isfinite(terms).all()
    largest = inputs.norm(dim=-1).amax(dim=-1)
    assert (largest >= 0.999).all() and (largest <= 2.001).all()  # norm_range [1, 2]


def test_a_huge_initial_range_is_normalised_too():
    from affine_icl.config import DataConfig
    from affine_icl.data import batches_from_table, population_table

    cfg = DataConfig(init_range=(-1e20, 1e20), eval_per_length=50)
    inputs = batches_from_table(population_table(cfg))[14].terms[:, :14]
    assert torch.isfinite(inputs).all() and (inputs.norm(dim=-1).amax(dim=-1) >= 0.999).all()


def test_safe_norm_is_the_plain_norm_wherever_that_is_finite():
    from affine_icl.data import safe_norm

    x = torch.randn(50, 7, 40, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.equal(safe_norm(x), x.norm(dim=-1))
    big = torch.full((2, 40), 1e20)
    assert torch.allclose(safe_norm(big), torch.full((2,), 1e20 * 40**0.5), rtol=1e-6)
