"""Each analysis on a model whose answer is known by construction."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_model import random_model

from affine_icl.analysis.attention import (
    key_position_scores,
    pattern_table,
    previous_token_scores,
    same_parity_mass,
)
from affine_icl.analysis.attribution import (
    component_stack,
    directions,
    head_attribution_table,
    mlp_attribution_table,
    project,
)
from affine_icl.analysis.heads import head_scores_table
from affine_icl.analysis.interventions import (
    identity_score,
    mean_ablation_table,
    pinv_qk_intervention,
    qk_intervention_table,
)
from affine_icl.analysis.ov import (
    effective_rank,
    eigenvalue_scores,
    layer0_ov_regressions,
    layer_input,
    layer_ov,
    outside_embedding_share,
    ov_scatter_points,
    per_vector_regression,
    random_like,
)
from affine_icl.analysis.ov_fits import fit_summary, median_r2_vector, ov_alpha
from affine_icl.analysis.residual import decode
from affine_icl.analysis.selection import heads_above, top_head
from affine_icl.config import DataConfig, ModelConfig
from affine_icl.data import sample_batch
from affine_icl.model import fold_weights

CFG = ModelConfig(d_vocab=6, d_model=32, d_head=8, n_heads=4, d_mlp=64, n_layers=3, n_ctx=16)


@pytest.fixture
def folded():
    return fold_weights(random_model(CFG, seed=2))


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(5)
    return sample_batch(DataConfig(vector_dim=6), 20, 10, gen)


def cache_of(model, inputs, hooks=()):
    with model.hooks(fwd_hooks=list(hooks)):
        _, cache = model.run_with_cache(inputs)
    return cache


def previous_token_pattern(pattern, hook):
    n = pattern.shape[-1]
    forced = torch.zeros(n, n)
    forced[0, 0] = 1
    forced[torch.arange(1, n), torch.arange(n - 1)] = 1
    pattern = pattern.clone()
    pattern[:, 0] = forced
    return pattern


def test_forced_previous_token_head_scores_one(folded, batch):
    cache = cache_of(folded, batch.inputs, [("blocks.0.attn.hook_pattern", previous_token_pattern)])
    scores = previous_token_scores(cache, CFG.n_layers)
    assert scores.query("layer == 0 and head == 0")["score"].item() == pytest.approx(1.0)
    assert scores.query("layer == 0 and head != 0")["score"].max() < 0.9
    (layer, head), reason = top_head(scores, 0, "score")
    assert (layer, head) == (0, 0) and "L0H0 (score 1.000)" in reason
    table = pattern_table(cache, 0)
    assert table.query("head == 0 and query == 5 and key == 4")["weight"].item() == pytest.approx(1)


def test_checkerboard_pattern_scores_one_and_uniform_less():
    n = 10
    q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
    checker = (((q - k) % 2 == 0) & (k <= q)).float()
    checker = checker / checker.sum(-1, keepdim=True)
    uniform = (k <= q).float() / (k <= q).float().sum(-1, keepdim=True)
    pat = torch.stack([checker, uniform])[None].repeat(4, 1, 1, 1)  # [N=4, H=2, Q, K]
    c = torch.tensor([-1.0, -1.0, 1.0, 1.0])
    table = same_parity_mass({"blocks.2.attn.hook_pattern": pat}, 2, c, 0.5)
    alt = table[table["group"] == "alternating"].set_index("head")["same_parity_mass"]
    assert alt[0] == pytest.approx(1.0) and 0.5 < alt[1] < 0.7


def key_pattern(n, key):
    """Every query q >= ``key`` attends only to ``key``; earlier queries only to themselves."""
    q = torch.arange(n)
    return torch.nn.functional.one_hot(torch.where(q >= key, key, q), n).float()


def previous_pattern(n):
    """Every query q >= 1 attends only to q - 1; query 0 to itself."""
    q = torch.arange(n)
    return torch.nn.functional.one_hot((q - 1).clamp(min=0), n).float()


def uniform_pattern(n):
    causal = torch.tril(torch.ones(n, n))
    return causal / causal.sum(-1, keepdim=True)


def checker_pattern(n):
    q, k = torch.arange(n)[:, None], torch.arange(n)[None, :]
    checker = (((q - k) % 2 == 0) & (k <= q)).float()
    return checker / checker.sum(-1, keepdim=True)


def test_key_position_scores_of_known_patterns():
    """Heads that attend to key 1, to the previous token, and uniformly, in two layers (in a
    different order): their mean attention to key 1 and to key 3 over queries q > key."""
    n = 6
    heads = [key_pattern(n, 1), previous_pattern(n), uniform_pattern(n)]
    cache = {
        "blocks.0.attn.hook_pattern": torch.stack(heads)[None].repeat(2, 1, 1, 1),
        "blocks.1.attn.hook_pattern": torch.stack(heads[::-1])[None].repeat(2, 1, 1, 1),
    }
    expected = {  # key -> score of (key-1 head, previous-token head, uniform head)
        1: [1.0, 1 / (n - 2), np.mean([1 / (q + 1) for q in range(2, n)])],
        3: [0.0, 1 / (n - 4), np.mean([1 / (q + 1) for q in range(4, n)])],
    }
    for key, scores in expected.items():
        table = key_position_scores(cache, 2, key)
        assert list(table.columns) == ["layer", "head", "key", "score"]
        assert (table["key"] == key).all()
        assert table["layer"].tolist() == [0, 0, 0, 1, 1, 1]
        assert table["head"].tolist() == [0, 1, 2, 0, 1, 2]
        np.testing.assert_allclose(table["score"], scores + scores[::-1], atol=1e-6)


def test_head_scores_table_puts_each_planted_score_on_its_head(folded, batch):
    """One head per score is built to have a known value; the merged table must show each on
    that head's row (a merge on the wrong key, or a swapped column, moves or duplicates it)."""
    d = CFG.d_head
    eye = torch.eye(CFG.d_model)
    c = torch.tensor([-1.0] * 10 + [1.0] * 10)  # first half alternating

    def force(head, pattern):
        def hook(p, hook):
            p = p.clone()
            p[:, head] = pattern(p.shape[-1]) if callable(pattern) else pattern
            return p

        return hook

    def parity_by_sign(p, hook):
        p = p.clone()
        n = p.shape[-1]
        p[c < 0, 1] = checker_pattern(n)
        p[c > 0, 1] = uniform_pattern(n)
        return p

    with torch.no_grad():
        folded.embed.W_E.copy_(eye[: CFG.d_vocab])  # W_E inside block 0 of d_model
        attn0, attn1, attn2 = (folded.blocks[l].attn for l in range(3))
        attn0.W_Q[3] = attn0.W_K[3] = eye[:, :d]  # QK = projection onto block 0
        attn1.W_V[0].zero_()  # OV = e_5 e_5^T: rank 1, eigenvalue +1
        attn1.W_O[0].zero_()
        attn1.W_V[0, 5, 0] = attn1.W_O[0, 0, 5] = 1.0
        attn2.W_V[3] = eye[:, 3 * d : 4 * d]  # OV = -projection onto block 3
        attn2.W_O[3] = -eye[3 * d : 4 * d]
    hooks = [
        ("blocks.0.attn.hook_pattern", force(0, previous_pattern)),
        ("blocks.1.attn.hook_pattern", force(2, lambda n: key_pattern(n, 1))),
        ("blocks.2.attn.hook_pattern", parity_by_sign),
    ]
    cache = cache_of(folded, batch.inputs, hooks)
    table = head_scores_table(folded, cache, c, 0.5)

    assert len(table) == CFG.n_layers * CFG.n_heads
    assert not table.duplicated(["layer", "head"]).any()
    scores = [c for c in table.columns if not c.endswith(("_null_mean", "_null_sd", "_z"))]
    assert not table[scores].isna().any().any()
    n = batch.length
    uniform_parity = np.mean([(q // 2 + 1) / (q + 1) for q in range(2, n)])
    planted = {  # column -> ((layer, head), value, is it the column's extreme?)
        "previous_token_score": ((0, 0), 1.0, "max"),
        "key1_score": ((1, 2), 1.0, "max"),
        "same_parity_alternating": ((2, 1), 1.0, "max"),
        "same_parity_non_alternating": ((2, 1), uniform_parity, None),
        "eigenvalue_score": ((2, 3), -1.0, "min"),
        "qk_identity_d_model": ((0, 3), math.sqrt(d / CFG.d_model), "max"),
        "qk_identity_embedding": ((0, 3), 1.0, "max"),
        "ov_effective_rank": ((1, 0), 1.0, "min"),
        "ov_sv1_share": ((1, 0), 1.0, "max"),
    }
    rows = table.set_index(["layer", "head"])
    for column, (head, value, extreme) in planted.items():
        assert rows.loc[head, column] == pytest.approx(value, abs=1e-4), column
        if extreme:
            assert getattr(rows[column], f"idx{extreme}")() == head, column
    # the previous-token head pays key 1 attention only from query 2; the key-1 head's
    # previous-token score comes from query 2 alone, too
    assert rows.loc[(0, 0), "key1_score"] == pytest.approx(1 / (n - 2))
    assert rows.loc[(1, 2), "previous_token_score"] == pytest.approx(1 / (n - 1))
    # each share beside its uniform share, each matrix score beside its shuffled null
    previous_chance = np.mean([1 / (q + 1) for q in range(1, n)])
    np.testing.assert_allclose(table["previous_token_chance"], previous_chance)
    np.testing.assert_allclose(table["key1_chance"], np.mean([1 / (q + 1) for q in range(2, n)]))
    np.testing.assert_allclose(table["same_parity_chance"], uniform_parity)
    assert rows.loc[(0, 0), "previous_token_ratio"] == pytest.approx(1 / previous_chance)
    assert rows.loc[(2, 1), "checkerboard_z"] > 3  # 10 sequences a group: z about 4.5
    assert rows.loc[(2, 3), "ov_effective_rank"] == pytest.approx(d, abs=1e-4)


def test_zeroed_head_gets_zero_attribution(folded, batch):
    with torch.no_grad():
        folded.blocks[1].attn.W_O[2].zero_()
    cache = cache_of(folded, batch.inputs)
    table = head_attribution_table(folded, cache, batch.inputs, batch.targets)
    zero = table.query("layer == 1 and head == 2")["attribution"]
    assert len(zero) == 2 * batch.length and (zero == 0).all()
    assert table.query("layer == 0")["attribution"].abs().sum() > 0
    assert set(table["variant"]) == {"target", "target - input"}


def test_attributions_of_all_components_add_up_to_the_prediction(folded, batch):
    out, cache = folded.run_with_cache(batch.inputs)
    stack, labels = component_stack(folded, cache)
    assert len(labels) == 2 + CFG.n_layers * (CFG.n_heads + 2)
    for name, direction in directions(batch.inputs, batch.targets).items():
        parts = project(stack, folded.W_U, direction)  # [C, N, L]
        bias = (folded.b_U * direction).sum(-1)
        whole = (out * direction).sum(-1)
        assert torch.allclose(parts.sum(0) + bias, whole, atol=1e-4), name


def test_mlp_attribution_table_shape(folded, batch):
    cache = cache_of(folded, batch.inputs)
    table = mlp_attribution_table(folded, cache, batch.inputs, batch.targets)
    assert sorted(table["layer"].unique()) == [0, 1, 2]
    assert len(table) == 3 * batch.length * 2


def set_ov(model, layer, matrix_per_head):
    """Give each head of ``layer`` W_V = E (first d_head dims) and W_O = matrix on that block."""
    d = CFG.d_head
    with torch.no_grad():
        for h in range(CFG.n_heads):
            model.blocks[layer].attn.W_V[h] = torch.eye(CFG.d_model)[:, h * d : (h + 1) * d]
            model.blocks[layer].attn.W_O[h] = (
                matrix_per_head * torch.eye(CFG.d_model)[h * d : (h + 1) * d]
            )


def test_eigenvalue_scores_of_minus_and_plus_identity(folded):
    set_ov(folded, 2, -1.0)
    set_ov(folded, 0, 1.0)
    scores = eigenvalue_scores(folded)
    assert np.allclose(scores.query("layer == 2")["eigenvalue_score"], -1, atol=1e-5)
    assert np.allclose(scores.query("layer == 0")["eigenvalue_score"], 1, atol=1e-5)
    negative, reason = heads_above(scores.assign(neg=-scores["eigenvalue_score"]), 2, "neg", 0.5)
    assert negative == [(2, h) for h in range(CFG.n_heads)]


def test_regression_recovers_slope_and_intercept():
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    table = per_vector_regression(x, 2.3 * x + 0.1)
    assert np.allclose(table["slope"], 2.3) and np.allclose(table["intercept"], 0.1)
    assert np.allclose(table["r2"], 1.0)


def test_layer0_ov_of_scaled_identity_has_that_slope(folded, batch):
    set_ov(folded, 0, 2.3)  # summed over heads: 2.3 * identity on all 32 dims
    cache = cache_of(folded, batch.inputs)
    table = layer0_ov_regressions(folded, cache, seed=0)
    residual = table[table["source"] == "residual"]
    assert np.allclose(residual["slope"], 2.3, atol=1e-4) and np.allclose(
        residual["r2"], 1, atol=1e-6
    )
    assert len(table[table["source"] == "random"]) == len(residual)


def test_share_outside_embedding_space_by_construction(folded, batch):
    cache = cache_of(folded, batch.inputs)
    # OV = projection onto the row space of W_E -> nothing outside
    vh = torch.linalg.svd(folded.W_E.detach(), full_matrices=False)[2]  # [6, 32]
    with torch.no_grad():  # W_V[0] W_O[0] = vh^T vh, the projection onto span(W_E)
        folded.blocks[0].attn.W_V.zero_()
        folded.blocks[0].attn.W_O.zero_()
        folded.blocks[0].attn.W_V[0, :, :6] = vh.T
        folded.blocks[0].attn.W_O[0, :6] = vh
    share = outside_embedding_share(folded, cache)
    assert share["share_outside"].max() < 1e-5
    assert share["embedding_rank"].iloc[0] == 6
    assert share["chance_share"].iloc[0] == pytest.approx(math.sqrt(1 - 6 / 32))
    with torch.no_grad():  # OV output orthogonal to span(W_E) -> everything outside
        complement = torch.linalg.svd(folded.W_E.detach(), full_matrices=True)[2][6:]
        folded.blocks[0].attn.W_O[0, :6] = complement[:6]
    assert outside_embedding_share(folded, cache)["share_outside"].min() > 1 - 1e-5


def test_effective_rank_counts_equal_singular_values():
    assert effective_rank(torch.diag(torch.tensor([2.0, 2.0, 2.0, 0, 0])))[0] == pytest.approx(3)
    assert effective_rank(torch.outer(torch.ones(5), torch.arange(5.0)))[0] == pytest.approx(1)


def test_identity_score_values():
    n = 16
    assert identity_score(torch.eye(n)) == pytest.approx(1)
    assert identity_score(-3 * torch.eye(n)) == pytest.approx(-1)
    q = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    assert identity_score(q @ torch.linalg.pinv(q)) == pytest.approx(math.sqrt(4 / n), abs=1e-5)


def test_qk_pinv_intervention_leaves_an_identity_qk_unchanged(batch):
    cfg = ModelConfig(d_vocab=6, d_model=16, d_head=16, n_heads=2, d_mlp=32, n_layers=3, n_ctx=16)
    model = fold_weights(random_model(cfg, seed=4))
    with torch.no_grad():  # layer-2 head 1 QK = identity (full rank, d_head = d_model)
        model.blocks[2].attn.W_Q[1] = torch.eye(16)
        model.blocks[2].attn.W_K[1] = torch.eye(16)
        model.blocks[2].attn.b_Q.zero_()
    gen = torch.Generator().manual_seed(1)
    changed = pinv_qk_intervention(model, [(2, 1)], gen)
    assert not torch.allclose(changed.blocks[2].attn.W_Q[1], model.blocks[2].attn.W_Q[1])
    assert torch.allclose(changed(batch.inputs), model(batch.inputs), atol=1e-4)
    table = qk_intervention_table(model, batch.inputs, batch.targets, [(2, 1)], 2, seed=1)
    assert list(table["scale"]) == ["unit", "frobenius", "trace"]  # all equal for I itself
    np.testing.assert_allclose(table["ratio"], 1, atol=1e-3)
    # on a head that is not the identity, the intervention does change the outputs
    other = pinv_qk_intervention(model, [(2, 0)], torch.Generator().manual_seed(1))
    assert not torch.allclose(other(batch.inputs), model(batch.inputs), atol=1e-4)


def test_qk_intervention_scaled_to_norm_or_trace_restores_a_scaled_identity(batch):
    """QK = 3 I: the unit projection (I) makes attention less sharp and changes the outputs;
    scaled to the QK's Frobenius norm or trace, the projection is 3 I again."""
    cfg = ModelConfig(d_vocab=6, d_model=16, d_head=16, n_heads=2, d_mlp=32, n_layers=3, n_ctx=16)
    model = fold_weights(random_model(cfg, seed=4))
    with torch.no_grad():
        model.blocks[2].attn.W_Q[1] = torch.eye(16) * 3**0.5
        model.blocks[2].attn.W_K[1] = torch.eye(16) * 3**0.5
        model.blocks[2].attn.b_Q.zero_()
    out = model(batch.inputs)
    for scale, unchanged in (("unit", False), ("frobenius", True), ("trace", True)):
        changed = pinv_qk_intervention(model, [(2, 1)], torch.Generator().manual_seed(1), scale)
        assert torch.allclose(changed(batch.inputs), out, atol=1e-4) == unchanged, scale
    with pytest.raises(ValueError, match="scale 'half'"):
        pinv_qk_intervention(model, [(2, 1)], torch.Generator(), "half")


def test_an_intervention_run_from_a_later_block_is_the_whole_forward_bit_for_bit(folded, batch):
    """The interventions run the blocks before the intervened layer once (resid_entering) and
    the rest per intervention (mse_from): the same MSE as the whole forward pass, with or without
    a hook, exactly (the same operations on the same batch)."""
    from affine_icl.analysis.interventions import mse_from, resid_entering
    from affine_icl.stacked import masked_mse

    whole = float(masked_mse(folded(batch.inputs).detach(), batch.targets, 2))
    hook = ("blocks.1.attn.hook_z", lambda z, hook: z * 0.5)
    hooked = float(
        masked_mse(folded.run_with_hooks(batch.inputs, fwd_hooks=[hook]), batch.targets, 2)
    )
    for layer in range(CFG.n_layers + 1):
        resid = resid_entering(folded, batch.inputs, layer)
        assert mse_from(folded, resid, layer, batch.targets, 2) == whole, layer
    resid = resid_entering(folded, batch.inputs, 1)
    assert mse_from(folded, resid, 1, batch.targets, 2, [hook]) == hooked != whole
    assert not folded.blocks[1].attn.hook_z.fwd_hooks  # the hook is removed afterwards


def test_an_intervention_starts_from_the_cached_residual(folded, batch):
    """Given an activation cache, the residual entering a layer is read from it, not
    computed: the same vectors, so the same ablation table; a cache without that layer's
    residual (the residual after the last block, as for a layer-2 table of a 2-layer model) is
    computed instead."""
    from affine_icl.activations import activation_cache
    from affine_icl.analysis.interventions import resid_entering

    cache = activation_cache(folded, batch.inputs)
    for layer in range(CFG.n_layers):
        read = resid_entering(folded, batch.inputs, layer, cache)
        assert read is cache[f"blocks.{layer}.hook_resid_pre"]
        assert torch.equal(read, resid_entering(folded, batch.inputs, layer))
    last = resid_entering(folded, batch.inputs, CFG.n_layers, cache)  # not in any cache
    assert torch.equal(last, resid_entering(folded, batch.inputs, CFG.n_layers))
    pd.testing.assert_frame_equal(
        mean_ablation_table(folded, batch.inputs, batch.targets, 1, 2, cache=cache),
        mean_ablation_table(folded, batch.inputs, batch.targets, 1, 2),
    )


def test_mean_ablation_of_an_input_independent_head_changes_nothing(folded, batch):
    with torch.no_grad():  # head 3's value is constant: z does not depend on the input
        folded.blocks[1].attn.W_V[3].zero_()
        folded.blocks[1].attn.b_V[3] = 0.7
    table = mean_ablation_table(folded, batch.inputs, batch.targets, layer=1, loss_from=2)
    assert list(table["ablated"]) == ["L1H0", "L1H1", "L1H2", "L1H3", "all layer-1 heads"]
    assert table.set_index("ablated").loc["L1H3", "ratio"] == pytest.approx(1, abs=1e-5)
    assert abs(table.set_index("ablated").loc["all layer-1 heads", "ratio"] - 1) > 1e-3


def test_decoding_an_intermediate_residual_gives_the_known_vector(folded, batch):
    """W_E with orthonormal, zero-mean rows, W_U = W_E^T, no position embedding, and a layer 0
    that only adds ``u @ W_E``: the residual after layer 0 is ``(a + u) @ W_E``, so decoding it
    gives ``(a + u) / rms + b_U`` with ``rms = sqrt(|a + u|^2 / d_model + eps)``. Layers 1 and 2
    stay random, so the model's output is something else."""
    g = torch.randn(CFG.d_model, CFG.d_vocab, generator=torch.Generator().manual_seed(3))
    basis = torch.linalg.qr(g - g.mean(0))[0]  # [d_model, d_vocab], orthonormal zero-mean columns
    u = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3, -0.7])
    b_U = torch.linspace(-1, 1, CFG.d_vocab)
    with torch.no_grad():
        folded.embed.W_E.copy_(basis.T)
        folded.pos_embed.W_pos.zero_()
        folded.unembed.W_U.copy_(basis)
        folded.unembed.b_U.copy_(b_U)
        block = folded.blocks[0]
        for p in (block.attn.W_O, block.attn.b_O, block.mlp.W_out):
            p.zero_()
        block.mlp.b_out.copy_(u @ basis.T)
    out, raw = folded.run_with_cache(batch.inputs)

    def expected(a):
        rms = ((a * a).sum(-1, keepdim=True) / CFG.d_model + CFG.eps).sqrt()
        return a / rms + b_U

    a = batch.inputs
    torch.testing.assert_close(decode(folded, raw["blocks.0.hook_resid_pre"]), expected(a))
    after = decode(folded, raw["blocks.0.hook_resid_post"])
    torch.testing.assert_close(after, expected(a + u))
    assert not torch.allclose(after, out, atol=1e-2)
    # one sequence ([pos, d_model], no batch dimension), as sequence_series decodes it
    one = decode(folded, raw["blocks.0.hook_resid_post"][4])
    torch.testing.assert_close(one, expected(a[4] + u))


def test_picked_sequences_follow_the_sign_of_c(folded, batch):
    from affine_icl.analysis.attention import picked_sequence_patterns
    from affine_icl.analysis.population import Population

    c = torch.tensor([0.2, 0.9, -0.3, -0.8] + [0.0] * 16)
    pop = Population(batch.inputs, batch.targets, c, np.arange(100, 120))
    cache = cache_of(folded, batch.inputs)
    alt = picked_sequence_patterns(cache, pop, 2, "alternating", 0.5)
    non = picked_sequence_patterns(cache, pop, 2, "non-alternating", 0.5)
    assert (alt["sample"] == 103).all() and alt["c"].iloc[0] == pytest.approx(-0.8)
    assert (non["sample"] == 101).all() and "c > 0.5" in non["picked_by"].iloc[0]
    with pytest.raises(ValueError, match=r"no alternating sequence with \|c\| > 0.9"):
        picked_sequence_patterns(cache, pop, 2, "alternating", 0.9)


# --------------------------------------------------------------------------- OV fit readings


def embed_in_zero_mean_basis(model):
    """W_E with orthonormal, zero-mean rows, W_U = W_E^T and no position embedding: a vector
    ``a`` enters the residual as ``a W_E``, which LayerNorm only divides by its scale, and
    ``(a W_E) W_U = a``."""
    g = torch.randn(CFG.d_model, CFG.d_vocab, generator=torch.Generator().manual_seed(3))
    basis = torch.linalg.qr(g - g.mean(0))[0]  # [d_model, d_vocab]
    with torch.no_grad():
        model.embed.W_E.copy_(basis.T)
        model.unembed.W_U.copy_(basis)
        model.pos_embed.W_pos.zero_()


def attend_to_previous_position(pattern, hook):
    """Every layer-0 head puts all its attention on p-1 (position 0 on itself)."""
    n = pattern.shape[-1]
    forced = torch.zeros(n, n)
    forced[0, 0] = 1
    forced[torch.arange(1, n), torch.arange(n - 1)] = 1
    return forced.expand_as(pattern).clone()


def unit_scale(scale, hook):
    return torch.ones_like(scale)


def test_d_model_rows_are_the_fit_of_the_residual_and_random_vectors(folded, batch):
    """The d_model rows come first and are bit for bit the direct fits of x OV on x."""
    cache = cache_of(folded, batch.inputs)
    table = layer0_ov_regressions(
        folded, cache, seed=4, inputs=batch.inputs, unfolded=random_model(CFG, seed=2)
    )
    columns = ["reading", "source", "vector", "slope", "intercept", "r2", "r2_chance"]
    assert list(table.columns) == columns
    # a line through n shuffled points: R^2 1/(n-1), n the reading's components
    chance = table.groupby("reading", sort=False)["r2_chance"].unique().map(list).to_dict()
    assert chance == {
        "d_model": [1 / (CFG.d_model - 1)],
        "d_model, OV transposed": [1 / (CFG.d_model - 1)],
        "d_model, unfolded": [1 / (CFG.d_model - 1)],
        "vocab": [1 / (CFG.d_vocab - 1)],
        "attention output": [1 / (CFG.d_vocab - 1)],
    }
    assert list(dict.fromkeys(zip(table["reading"], table["source"], strict=True))) == [
        (reading, source)
        for reading in (
            "d_model",
            "d_model, OV transposed",
            "d_model, unfolded",
            "vocab",
            "attention output",
        )
        for source in ("residual", "random")
    ]
    x = layer_input(cache, 0)
    rand = random_like(x, torch.Generator().manual_seed(4))
    ov = layer_ov(folded, 0)
    expected = pd.concat(
        [
            per_vector_regression(v, v @ ov).assign(source=s)
            for s, v in (("residual", x), ("random", rand))
        ],
        ignore_index=True,
    )
    d_model = table.iloc[: 2 * len(x)]
    assert (d_model["reading"] == "d_model").all()
    pd.testing.assert_frame_equal(
        d_model.drop(columns=["reading", "r2_chance"]),
        expected[["source", "vector", "slope", "intercept", "r2"]],
        check_exact=True,
    )
    # the transposed reading: the same vectors through OV^T
    transposed = table[table["reading"] == "d_model, OV transposed"]
    np.testing.assert_array_equal(
        transposed["r2"],
        pd.concat([per_vector_regression(v, v @ ov.T) for v in (x, rand)])["r2"],
    )
    # without the inputs, only these rows
    alone = layer0_ov_regressions(folded, cache, seed=4)
    pd.testing.assert_frame_equal(alone, d_model, check_exact=True)


def test_vocab_reading_of_a_scaled_identity_has_that_slope(folded, batch):
    """W_E OV W_U = 2.3 I: every input vector and every random vector maps to 2.3 times itself."""
    embed_in_zero_mean_basis(folded)
    set_ov(folded, 0, 2.3)  # OV = 2.3 I on d_model, so W_E OV W_U = 2.3 W_E W_E^T = 2.3 I
    cache = cache_of(folded, batch.inputs)
    table = layer0_ov_regressions(folded, cache, seed=0, inputs=batch.inputs)
    vocab = table[table["reading"] == "vocab"]
    assert len(vocab) == 2 * batch.inputs.shape[0] * batch.inputs.shape[1]
    for source in ("residual", "random"):
        fits = vocab[vocab["source"] == source]
        assert list(fits["vector"]) == list(range(len(fits)))
        np.testing.assert_allclose(fits["slope"], 2.3, atol=1e-5)
        np.testing.assert_allclose(fits["r2"], 1, atol=1e-6)
        np.testing.assert_allclose(fits["intercept"], 0, atol=1e-5)
    assert ov_alpha(table, reading="vocab") == pytest.approx(2.3, abs=1e-5)
    # the scatter of a vector is the input against 2.3 times it
    points = ov_scatter_points(folded, cache, 7, 0, reading="vocab", inputs=batch.inputs)
    torch.testing.assert_close(torch.tensor(points["x"].values), batch.inputs.reshape(-1, 6)[7])
    np.testing.assert_allclose(points["ov_x"], 2.3 * points["x"], atol=1e-5)


@pytest.mark.parametrize("unit_scales", [True, False])
def test_attention_output_reading_of_a_previous_token_copy(folded, batch, unit_scales):
    """Layer 0 attends only to p-1 with OV = 1.7 I, W_E OV W_U = 1.7 I and no position
    embedding: its output at p, read through the final LayerNorm and W_U, is
    1.7 a_(p-1) / (s1 s_final), s1 layer 0's LayerNorm scale at p-1 and s_final the final
    one at p. Forced to 1, the slope is 1.7; b_O (random here) is not part of the reading.
    The random vectors take the same path, so they get the same slopes."""
    embed_in_zero_mean_basis(folded)
    set_ov(folded, 0, 1.7)
    assert folded.blocks[0].attn.b_O.abs().max() > 0.1
    hooks = [("blocks.0.attn.hook_pattern", attend_to_previous_position)]
    if unit_scales:
        hooks += [("blocks.0.ln1.hook_scale", unit_scale), ("ln_final.hook_scale", unit_scale)]
    cache = cache_of(folded, batch.inputs, hooks)
    table = layer0_ov_regressions(folded, cache, seed=0, inputs=batch.inputs)
    n, length = batch.inputs.shape[:2]
    fits = table[table["reading"] == "attention output"]
    s1 = cache["blocks.0.ln1.hook_scale"][:, :-1, 0]  # at the key position p-1
    s_final = cache["ln_final.hook_scale"][:, 1:, 0]  # at the query position p
    expected = (1.7 / (s1 * s_final)).reshape(-1).double().numpy()
    if unit_scales:
        np.testing.assert_allclose(expected, 1.7)
    for source in ("residual", "random"):
        rows = fits[fits["source"] == source]
        # one row per (n, p >= 1), vector = n * L + p
        assert list(rows["vector"]) == [i * length + p for i in range(n) for p in range(1, length)]
        np.testing.assert_allclose(rows["slope"], expected, rtol=1e-4)
        np.testing.assert_allclose(rows["r2"], 1, atol=1e-6)
    # the scatter of vector n*L + p is a_(p-1) against the read-out attention output at p
    points = ov_scatter_points(
        folded, cache, 2 * length + 3, 0, reading="attention output", inputs=batch.inputs
    )
    torch.testing.assert_close(torch.tensor(points["x"].values), batch.inputs[2, 2])
    slope = fits.set_index(["source", "vector"]).loc[("residual", 2 * length + 3), "slope"]
    np.testing.assert_allclose(points["ov_x"], slope * points["x"], atol=1e-5)


def test_readings_refuse_inputs_that_are_not_the_cached_sequences(folded, batch):
    cache = cache_of(folded, batch.inputs)
    with pytest.raises(ValueError, match="not the sequences of the activation cache"):
        layer0_ov_regressions(folded, cache, seed=0, inputs=batch.inputs.flip(0))
    with pytest.raises(ValueError, match="do not match the cache"):
        layer0_ov_regressions(folded, cache, seed=0, inputs=batch.inputs[:3])
    with pytest.raises(ValueError, match="has no vector 0"):  # position 0 attends to nothing
        ov_scatter_points(folded, cache, 0, 0, reading="attention output", inputs=batch.inputs)


def test_fit_summary_per_reading_and_source():
    table = pd.DataFrame(
        {
            "reading": ["d_model"] * 4 + ["vocab"] * 4,
            "source": ["residual", "residual", "random", "random"] * 2,
            "vector": [0, 1, 0, 1] * 2,
            "slope": [1.0, 3.0, 0.0, 0.5, 2.0, 2.0, 1.0, 1.0],
            "intercept": 0.0,
            "r2": [0.2, 0.4, 0.0, 0.1, 1.0, 1.0, 0.5, 0.7],
        }
    )
    summary = fit_summary(table).set_index(["reading", "source"])
    assert list(summary.index) == [
        ("d_model", "residual"),
        ("d_model", "random"),
        ("vocab", "residual"),
        ("vocab", "random"),
    ]
    assert summary.loc[("d_model", "residual")].to_dict() == pytest.approx(
        {"n_vectors": 2, "mean_r2": 0.3, "median_slope": 2.0, "slope_q25": 1.5, "slope_q75": 2.5}
    )
    assert summary.loc[("vocab", "random"), "mean_r2"] == pytest.approx(0.6)
    # the defaults read the d_model rows; a table without a reading column is all d_model
    assert ov_alpha(table) == 2.0 and ov_alpha(table, reading="vocab") == 2.0
    assert median_r2_vector(table, "random", reading="vocab") == 0
    old = table[table["reading"] == "d_model"].drop(columns="reading")
    assert ov_alpha(old) == 2.0 and fit_summary(old)["reading"].tolist() == ["d_model"] * 2


def test_unfolded_reading_sees_the_layernorm_weight_in_x(batch):
    """Layer 0's LayerNorm weight 2 (bias 0): folded, it sits in W_V; unfolded, in x. The
    unfolded reading's x is twice the folded one and its y the same up to a constant (the
    folding centres W_O), so each vector keeps its R^2 and halves its slope."""
    unfolded = random_model(CFG, seed=2)
    with torch.no_grad():
        unfolded.blocks[0].ln1.w.fill_(2.0)
        unfolded.blocks[0].ln1.b.zero_()
    folded = fold_weights(unfolded)
    cache = cache_of(folded, batch.inputs)
    table = layer0_ov_regressions(folded, cache, seed=4, inputs=batch.inputs, unfolded=unfolded)
    rows = {r: t.reset_index(drop=True) for r, t in table.groupby("reading")}
    base, seen = rows["d_model"], rows["d_model, unfolded"]
    residual = (base["source"] == "residual").to_numpy()
    np.testing.assert_allclose(seen["r2"][residual], base["r2"][residual], atol=1e-6)
    np.testing.assert_allclose(seen["slope"][residual], base["slope"][residual] / 2, rtol=1e-4)
    with pytest.raises(ValueError, match="needs the unfolded model"):
        ov_scatter_points(folded, cache, 0, 4, reading="d_model, unfolded", inputs=batch.inputs)
