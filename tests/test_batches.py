"""Batches spread over threads (affine_icl.batches): the same bits as one call on one thread,
the threads given back, and the interventions that use them still the definition."""

import pytest
import torch
from test_model import random_model

from affine_icl import batches
from affine_icl.activations import activation_cache
from affine_icl.analysis.interventions import (
    mean_ablation_table,
    outputs_from,
    outputs_from_z,
    resid_entering,
)
from affine_icl.batches import map_batches, map_on_threads, use_threads
from affine_icl.config import DataConfig, ModelConfig
from affine_icl.data import sample_batch
from affine_icl.model import fold_weights
from affine_icl.stacked import masked_mse

PAPER_SHAPE = ModelConfig()  # d_model 128, d_mlp 3,072: the shape the batches were measured on


@pytest.fixture(scope="module")
def model():
    return fold_weights(random_model(PAPER_SHAPE, seed=1))


@pytest.fixture(scope="module")
def population():
    """250 sequences of 14: three batches of BATCH_SIZE 100, the last one short."""
    return sample_batch(DataConfig(), 250, 14, torch.Generator().manual_seed(2))


def on_threads(n: int, fn):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def test_batches_on_two_threads_are_one_call_on_one_thread_bit_for_bit(model, population):
    whole = on_threads(1, lambda: model(population.inputs))
    parts = on_threads(2, lambda: map_batches(model, population.inputs))
    assert [len(p) for p in parts] == [100, 100, 50]  # in order, the last batch short
    assert torch.equal(torch.cat(parts), whole)


def test_map_batches_gives_the_threads_back_even_when_fn_fails():
    def fail(batch):
        raise RuntimeError("no")

    def threads_after(fn):
        def run():
            try:
                map_batches(fn, torch.zeros(300, 2))
            except RuntimeError:
                pass
            return torch.get_num_threads()

        return run

    assert on_threads(2, threads_after(torch.neg)) == 2
    assert on_threads(2, threads_after(fail)) == 2
    with pytest.raises(RuntimeError, match="no"):
        map_batches(fail, torch.zeros(300, 2))


@torch.no_grad()
def test_mean_ablation_replaces_z_by_its_mean_over_the_whole_population(model, population):
    """The batches see 100 sequences each, the ablation the mean over all 250: the table is
    what one hooked forward pass over the population gives, with z's mean taken in the hook."""
    name = "blocks.1.attn.hook_z"

    def whole_population_hook(z, hook):
        z = z.clone()
        z[:, :, 2] = z.mean(0, keepdim=True)[:, :, 2]
        return z

    def reference():
        out = model.run_with_hooks(population.inputs, fwd_hooks=[(name, whole_population_hook)])
        return float(masked_mse(out, population.targets, 2))

    expected = on_threads(1, reference)
    table = on_threads(
        2, lambda: mean_ablation_table(model, population.inputs, population.targets, 1, 2)
    )
    assert table.set_index("ablated").loc["L1H2", "mse_after"] == expected  # bit for bit
    assert table["mse_before"].iloc[0] == on_threads(
        1, lambda: float(masked_mse(model(population.inputs), population.targets, 2))
    )


@torch.no_grad()
def test_outputs_from_keeps_the_activation_of_every_sequence_in_order(model, population):
    resid = resid_entering(model, population.inputs, 1)
    outputs, z = on_threads(2, lambda: outputs_from(model, resid, 1, keep="blocks.2.attn.hook_z"))
    _, cache = on_threads(1, lambda: model.run_with_cache(population.inputs))
    assert torch.equal(z, cache["blocks.2.attn.hook_z"])
    assert outputs_from(model, resid, 1)[1] is None


@torch.no_grad()
def test_outputs_from_a_changed_z_are_the_hooked_pass_bit_for_bit(model, population):
    """Continuing from block 1's z (its attention patterns not computed again) gives what the
    forward pass with that change made in ``hook_z`` gives; the z as kept, the outputs."""
    name = "blocks.1.attn.hook_z"
    resid = resid_entering(model, population.inputs, 1)
    outputs, z = on_threads(2, lambda: outputs_from(model, resid, 1, keep=name))
    assert torch.equal(on_threads(2, lambda: outputs_from_z(model, resid, z, 1)), outputs)

    def halve_head_3(z, hook):
        z = z.clone()
        z[:, :, 3] *= 0.5
        return z

    hooked, _ = on_threads(2, lambda: outputs_from(model, resid, 1, [(name, halve_head_3)]))
    changed = z.clone()
    changed[:, :, 3] *= 0.5
    from_z = on_threads(2, lambda: outputs_from_z(model, resid, changed, 1))
    assert torch.equal(from_z, hooked)
    assert not torch.equal(from_z, outputs)


def test_map_batches_refuses_tensors_of_different_row_counts():
    with pytest.raises(ValueError, match=r"tensors of \[300, 299\] rows"):
        map_batches(torch.add, torch.zeros(300, 2), torch.zeros(299, 2))


def test_the_first_batch_runs_alone_on_the_calling_thread_before_the_others():
    """A kernel's first call must not come from two threads at once (module docstring)."""
    import threading

    events = []

    def fn(batch):
        events.append(("start", int(batch[0]), threading.get_ident()))
        events.append(("end", int(batch[0]), threading.get_ident()))
        return batch

    parts = on_threads(2, lambda: map_batches(fn, torch.arange(300), batch_size=100))
    assert torch.equal(torch.cat(parts), torch.arange(300))
    assert events[:2] == [("start", 0, threading.get_ident()), ("end", 0, threading.get_ident())]
    assert {e[1] for e in events[2:]} == {100, 200}


@pytest.fixture
def set_threads(monkeypatch):
    """:func:`use_threads` for one test; batches' count and torch's threads restored after."""
    before = torch.get_num_threads()
    monkeypatch.setattr(batches, "_threads", None)
    yield use_threads
    torch.set_num_threads(before)


def test_an_activation_cache_is_the_same_bits_on_any_number_of_threads(
    model, population, set_threads
):
    """The analyses compute on one torch thread and run batches on the rule's threads: the
    cache (and every table from it) does not depend on the count. Computed on torch's intra-op
    threads instead, a cache on 2 threads differed from one on 1 in its last bits."""
    caches = []
    for n in (1, 2, 3):
        set_threads(n)
        assert batches.analysis_threads() == n and torch.get_num_threads() == 1
        caches.append(activation_cache(model, population.inputs))
    for cache in caches[1:]:
        assert set(cache.keys()) == set(caches[0].keys())
        for name in caches[0].keys():
            assert torch.equal(cache[name], caches[0][name]), name


def test_use_threads_refuses_no_threads(set_threads):
    with pytest.raises(ValueError, match="at least 1"):
        set_threads(0)


def test_items_on_other_threads_run_with_the_callers_grad_mode():
    with torch.no_grad():
        modes = map_on_threads(lambda _: torch.is_grad_enabled(), range(6), 3)
    assert modes == [False] * 6  # a pool thread's own grad mode is on
    assert map_on_threads(lambda _: torch.is_grad_enabled(), range(6), 3) == [True] * 6
