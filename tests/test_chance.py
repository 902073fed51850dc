"""Chance levels with known answers: a head without preference scores at chance, a planted
effect scores what was planted, and structured matrices stand far outside their shuffled null."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_analysis import CFG, checker_pattern, uniform_pattern
from test_model import random_model

from affine_icl.analysis.chance import (
    label_permutation_null,
    matrix_score_nulls,
    r2_chance,
    uniform_key_share,
    uniform_same_parity_share,
)
from affine_icl.analysis.heads import head_scores_table
from affine_icl.analysis.ov import per_vector_regression
from affine_icl.config import ModelConfig
from affine_icl.model import fold_weights

N_POS, N_SEQ = 10, 40


def planted_key1(n: int, times: float) -> torch.Tensor:
    """Each query q > 1 pays key 1 ``times`` the uniform share 1/(q+1), the rest spread evenly
    over its other keys; queries 0 and 1 attend uniformly."""
    pattern = uniform_pattern(n).clone()
    for q in range(2, n):
        pattern[q, : q + 1] = (1 - times / (q + 1)) / q
        pattern[q, 1] = times / (q + 1)
    return pattern


def scores_of(layer_patterns, c, model=None):
    """head_scores_table on a cache made of the given [N, H, Q, K] patterns per layer."""
    cache = {f"blocks.{l}.attn.hook_pattern": p for l, p in enumerate(layer_patterns)}
    model = model or fold_weights(random_model(CFG, seed=2))
    return head_scores_table(model, cache, c, 0.5, null_draws=100).set_index(["layer", "head"])


def test_uniform_head_scores_at_chance_and_a_planted_key1_column_scores_what_was_planted():
    gen = torch.Generator().manual_seed(0)
    c = torch.where(torch.rand(N_SEQ, generator=gen) < 0.5, -1.0, 1.0)
    uniform = uniform_pattern(N_POS)
    heads = [uniform, planted_key1(N_POS, 3.0), planted_key1(N_POS, 1.5), uniform]
    layer = torch.stack(heads)[None].repeat(N_SEQ, 1, 1, 1)
    rows = scores_of([layer] * CFG.n_layers, c)
    assert rows.loc[(1, 0), "previous_token_ratio"] == pytest.approx(1.0)
    assert rows.loc[(1, 0), "key1_ratio"] == pytest.approx(1.0)
    assert rows.loc[(1, 1), "key1_ratio"] == pytest.approx(3.0)
    assert rows.loc[(1, 2), "key1_ratio"] == pytest.approx(1.5)
    assert rows.loc[(1, 0), "same_parity_alternating"] == pytest.approx(
        rows.loc[(1, 0), "same_parity_chance"]
    )


def test_checkerboard_z_is_large_only_when_the_pattern_follows_the_sign_of_c():
    gen = torch.Generator().manual_seed(1)
    c = torch.where(torch.arange(N_SEQ) % 2 == 0, -1.0, 1.0)
    by_sign = torch.where(
        (c < 0)[:, None, None], checker_pattern(N_POS), uniform_pattern(N_POS)
    )  # [N, Q, K]
    noise = torch.rand(N_SEQ, N_POS, N_POS, generator=gen).tril()
    noise = noise / noise.sum(-1, keepdim=True)  # random patterns, unrelated to c
    layer = torch.stack([by_sign, noise, noise, noise], dim=1)
    rows = scores_of([layer] * CFG.n_layers, c)
    assert rows.loc[(2, 0), "checkerboard_z"] > 5  # a difference of 0.45, sd about 0.07
    assert abs(rows.loc[(2, 1), "checkerboard_z"]) < 4


def test_label_permutation_null_is_centred_on_zero():
    values = torch.randn(200, 3, generator=torch.Generator().manual_seed(2))
    groups = torch.arange(200) < 100
    null = label_permutation_null(values, groups, ~groups, 500, torch.Generator().manual_seed(3))
    assert null.shape == (500, 3)
    np.testing.assert_allclose(null.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(null.std(0), (2 / 100) ** 0.5, rtol=0.15)  # sd of a difference


def test_structured_qk_and_ov_stand_far_outside_their_shuffled_nulls():
    """A QK that is a rank-d_head projection plus noise scores far above the shuffled null,
    an OV that is minus a projection far below it; a random head sits inside its null."""
    cfg = ModelConfig(d_vocab=6, d_model=32, d_head=8, n_heads=2, d_mlp=64, n_layers=1, n_ctx=16)
    model = fold_weights(random_model(cfg, seed=3))
    gen = torch.Generator().manual_seed(4)
    basis, _ = torch.linalg.qr(torch.randn(32, 8, generator=gen))  # orthonormal columns
    with torch.no_grad():
        attn = model.blocks[0].attn
        attn.W_Q[0] = basis + 0.05 * torch.randn(32, 8, generator=gen)
        attn.W_K[0] = basis + 0.05 * torch.randn(32, 8, generator=gen)
        attn.W_V[0] = basis
        attn.W_O[0] = -basis.T + 0.05 * torch.randn(8, 32, generator=gen)
    nulls = matrix_score_nulls([model], draws=200, seed=0)[0].set_index(["layer", "head"])
    from affine_icl.analysis.interventions import head_qk, identity_score
    from affine_icl.analysis.ov import eigenvalue_scores

    eig = eigenvalue_scores(model).set_index(["layer", "head"])["eigenvalue_score"]
    for head, structured in ((0, True), (1, False)):
        row = nulls.loc[(0, head)]
        qk_z = (
            identity_score(head_qk(model, 0, head)) - row["qk_identity_d_model_null_mean"]
        ) / row["qk_identity_d_model_null_sd"]
        eig_z = (eig[(0, head)] - row["eigenvalue_score_null_mean"]) / row[
            "eigenvalue_score_null_sd"
        ]
        if structured:
            assert qk_z > 10 and eig_z < -4
        else:
            assert abs(qk_z) < 4 and abs(eig_z) < 4
        assert abs(row["qk_identity_d_model_null_mean"]) < 3 * row["qk_identity_d_model_null_sd"]


def test_matrix_nulls_do_not_depend_on_how_many_threads_score_the_heads():
    """The shuffles are drawn head after head from one generator, then the heads are scored
    on as many threads as torch has: the same table on one thread as on three."""
    cfg = ModelConfig(d_vocab=6, d_model=16, d_head=4, n_heads=3, d_mlp=32, n_layers=2, n_ctx=8)
    model = fold_weights(random_model(cfg, seed=6))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = matrix_score_nulls([model], draws=20, seed=2)[0]
        torch.set_num_threads(3)
        three = matrix_score_nulls([model], draws=20, seed=2)[0]
    finally:
        torch.set_num_threads(before)
    pd.testing.assert_frame_equal(one, three)
    assert list(one[["layer", "head"]].itertuples(index=False, name=None)) == [
        (layer, head) for layer in range(2) for head in range(3)
    ]
    assert not one.equals(matrix_score_nulls([model], draws=20, seed=3)[0])  # the seed draws them


def test_the_nulls_of_several_models_at_once_are_each_models_own():
    """The snapshots of a run share their shuffles (sorted once): each frame is the one its
    model gets alone; models of another shape are refused, not given wrong shuffles."""
    cfg = ModelConfig(d_vocab=6, d_model=16, d_head=4, n_heads=3, d_mlp=32, n_layers=2, n_ctx=8)
    models = [fold_weights(random_model(cfg, seed=s)) for s in (7, 8, 9)]
    together = matrix_score_nulls(models, draws=20, seed=2)
    for model, frame in zip(models, together, strict=True):
        pd.testing.assert_frame_equal(frame, matrix_score_nulls([model], draws=20, seed=2)[0])
    assert not together[0].equals(together[1])
    wider = fold_weights(random_model(ModelConfig(**{**vars(cfg), "d_model": 24}), seed=7))
    with pytest.raises(ValueError, match="2 different shapes"):
        matrix_score_nulls([models[0], wider], draws=20, seed=2)
    assert matrix_score_nulls([], draws=20, seed=2) == []


def test_uniform_shares_and_r2_chance_match_simulation():
    assert uniform_key_share(4, key_offset=1) == pytest.approx(np.mean([1 / 2, 1 / 3, 1 / 4]))
    assert uniform_key_share(4, key=1) == pytest.approx(np.mean([1 / 3, 1 / 4]))
    assert uniform_same_parity_share(4) == pytest.approx(np.mean([2 / 3, 2 / 4]))
    with pytest.raises(ValueError, match="exactly one"):
        uniform_key_share(4)
    # R^2 of y against its own components shuffled: mean 1/(n-1)
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(4000, 40, generator=gen)
    shuffled = y[:, torch.randperm(40, generator=gen)]
    r2 = per_vector_regression(shuffled, y)["r2"].mean()
    assert r2 == pytest.approx(r2_chance(40), rel=0.1)


def test_pattern_tables_carry_the_uniform_weight_and_the_same_parity_share():
    from affine_icl.analysis.attention import (
        pattern_table,
        same_parity_of_table,
        same_parity_per_sequence,
        with_uniform_weight,
    )

    cache = {
        "blocks.2.attn.hook_pattern": torch.stack([checker_pattern(8), uniform_pattern(8)])[None]
    }
    table = with_uniform_weight(pattern_table(cache, 2))
    cell = table.query("head == 1 and query == 3 and key == 1")
    assert cell["uniform_weight"].item() == pytest.approx(0.25) == cell["weight"].item()
    assert table.query("key > query")["uniform_weight"].eq(0).all()
    parity = same_parity_of_table(table)
    np.testing.assert_allclose(parity["mass"], same_parity_per_sequence(cache, 2)[0])
    np.testing.assert_allclose(parity["chance"], uniform_same_parity_share(8))


def test_the_checkerboard_is_measured_in_float64_from_the_float32_patterns():
    """The difference of two group means near 0.5 (here 1e-3 to 1e-2) keeps only 4-5 digits in
    float32, so it moved with the activation cache's last bits; in float64 it is the difference
    numpy computes from the same float32 patterns (float32 was 1e-7 off)."""
    gen = torch.Generator().manual_seed(4)
    n_seq = 400
    c = torch.where(torch.arange(n_seq) % 2 == 0, -1.0, 1.0)
    noise = torch.rand(n_seq, 4, N_POS, N_POS, generator=gen).tril()
    layer = noise / noise.sum(-1, keepdim=True)  # float32, as the cache keeps them
    rows = scores_of([layer] * CFG.n_layers, c)
    p = layer.double().numpy()
    q, k = np.arange(N_POS)[:, None], np.arange(N_POS)[None, :]
    mass = (p * (((q - k) % 2 == 0) & (k <= q))).sum(-1)[:, :, 2:].mean(-1)  # [N, H]
    alternating = (c < 0).numpy()
    difference = mass[alternating].mean(0) - mass[~alternating].mean(0)
    for layer_index in range(CFG.n_layers):
        measured = rows.loc[layer_index, "checkerboard_difference"].to_numpy()
        np.testing.assert_allclose(measured, difference, rtol=0, atol=1e-13)
        parity = rows.loc[layer_index, "same_parity_alternating"].to_numpy()
        np.testing.assert_allclose(parity, mass[alternating].mean(0), rtol=0, atol=1e-13)
