"""The vector-input GPT and the TransformerLens 4 tools it must support."""

import pytest
import torch
from transformer_lens import ActivationCache, FactoredMatrix

from affine_icl.model import VectorTransformer, fold_weights, load_model, save_weights


def random_model(cfg, seed=0):
    """A model whose LayerNorm weights/biases and all biases are random, not fresh."""
    gen = torch.Generator().manual_seed(seed)
    model = VectorTransformer(cfg).init_weights(gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".w"):
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=gen))
            elif not name.split(".")[-1].startswith("W_"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.fixture
def model(tiny_model_cfg):
    return random_model(tiny_model_cfg)


@pytest.fixture
def x(tiny_model_cfg):
    return torch.randn(3, 9, tiny_model_cfg.d_vocab, generator=torch.Generator().manual_seed(1))


def test_output_shape_and_hook_names(model, x, tiny_model_cfg):
    out, cache = model.run_with_cache(x)
    assert out.shape == x.shape
    h, p, m = tiny_model_cfg.n_heads, x.shape[1], tiny_model_cfg.d_model
    assert cache["blocks.0.attn.hook_pattern"].shape == (3, h, p, p)
    assert cache["blocks.1.attn.hook_z"].shape == (3, p, h, tiny_model_cfg.d_head)
    assert cache["blocks.2.attn.hook_result"].shape == (3, p, h, m)
    assert cache["blocks.2.hook_resid_post"].shape == (3, p, m)
    assert cache["ln_final.hook_scale"].shape == (3, p, 1)
    assert cache["blocks.0.mlp.hook_post"].shape == (3, p, tiny_model_cfg.d_mlp)
    assert set(model.state_dict()) >= {
        "embed.W_E",
        "pos_embed.W_pos",
        "unembed.W_U",
        "blocks.0.attn.W_Q",
        "blocks.0.ln1.w",
        "blocks.0.mlp.W_in",
    }
    assert model.blocks[0].attn.W_Q.shape == (h, m, tiny_model_cfg.d_head)
    assert model.blocks[0].attn.W_O.shape == (h, tiny_model_cfg.d_head, m)


def test_bad_input_shapes_are_named(model, tiny_model_cfg):
    with pytest.raises(ValueError, match="exceeds the context window n_ctx=16"):
        model(torch.zeros(1, 17, tiny_model_cfg.d_vocab))
    with pytest.raises(ValueError, match=r"expected input of shape \[batch, pos, 6\]"):
        model(torch.zeros(1, 4, 5))


def test_causal_masking(model, x):
    """Changing the input at position k changes no output before k, and does change k."""
    base = model(x)
    for k in (0, 4, 8):
        changed = x.clone()
        changed[:, k] += 5.0
        out = model(changed)
        assert torch.equal(out[:, :k], base[:, :k])
        assert not torch.allclose(out[:, k], base[:, k])
    pattern = model.run_with_cache(x)[1]["blocks.1.attn.hook_pattern"]
    assert torch.all(pattern.triu(diagonal=1) == 0)
    assert torch.allclose(pattern.sum(-1), torch.ones(()))


def test_run_with_hooks_can_ablate(model, x):
    """Zeroing layer 1's hook_z equals zeroing its W_O (known by construction)."""
    ablated = model.run_with_hooks(
        x, fwd_hooks=[("blocks.1.attn.hook_z", lambda z, hook: torch.zeros_like(z))]
    )
    with torch.no_grad():
        model.blocks[1].attn.W_O.zero_()
    assert torch.allclose(ablated, model(x), atol=1e-6)
    assert not model.blocks[1].attn.hook_z.fwd_hooks  # hooks removed afterwards


def test_activation_cache_decompositions(model, x):
    _, cache = model.run_with_cache(x)
    assert isinstance(cache, ActivationCache)  # as HookedTransformer gives it
    assert torch.equal(cache["pattern", 0], cache["blocks.0.attn.hook_pattern"])
    assert cache.accumulated_resid().shape[0] == 4  # embed + 3 layers
    resid, labels = cache.decompose_resid(return_labels=True)
    assert labels == [
        "embed",
        "pos_embed",
        "0_attn_out",
        "0_mlp_out",
        "1_attn_out",
        "1_mlp_out",
        "2_attn_out",
        "2_mlp_out",
    ]
    assert torch.allclose(resid.sum(0), cache["blocks.2.hook_resid_post"], atol=1e-5)
    heads, head_labels = cache.stack_head_results(layer=1, return_labels=True)
    assert head_labels[:2] == ["L0H0", "L0H1"] and heads.shape[0] == 4
    b_O = model.blocks[0].attn.b_O
    assert torch.allclose(heads.sum(0) + b_O, cache["blocks.0.hook_attn_out"], atol=1e-5)
    normed = cache.apply_ln_to_stack(resid)
    assert normed.shape == resid.shape
    x_final = cache["blocks.2.hook_resid_post"]
    expected = (x_final - x_final.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"]
    assert torch.allclose(normed.sum(0), expected, atol=1e-4)


def test_folding_preserves_outputs_with_random_layernorm(model, x):
    folded = fold_weights(model)
    assert folded.cfg.normalization_type == "LNPre"
    assert not any(".ln" in k or k.startswith("ln_final") for k in folded.state_dict())
    assert (folded(x) - model(x)).abs().max() < 1e-4
    # value biases folded into b_O
    assert torch.all(folded.blocks[0].attn.b_V == 0)
    # after folding, the direct path is exact: sum of LN-applied components @ W_U + b_U = output
    out, raw = folded.run_with_cache(x)
    cache = ActivationCache(raw, folded)
    resid = cache.decompose_resid()
    direct = cache.apply_ln_to_stack(resid).sum(0) @ folded.W_U + folded.b_U
    assert torch.allclose(direct, out, atol=1e-4)


def test_folding_into_a_model_that_keeps_ln_weights_would_be_wrong(model, x):
    """Guards the design note: folded weights must go into parameter-free LayerNorms."""
    folded = fold_weights(model)
    state = {**model.state_dict(), **folded.state_dict()}
    double = VectorTransformer(model.cfg)
    double.load_state_dict(state)
    assert (double(x) - model(x)).abs().max() > 1e-2


def test_factored_matrix_eigenvalues_of_minus_identity_ov(tiny_model_cfg):
    """An OV circuit set to minus identity on a d_head subspace has eigenvalues -1."""
    model = VectorTransformer(tiny_model_cfg).init_weights(torch.Generator().manual_seed(0))
    d, m = tiny_model_cfg.d_head, tiny_model_cfg.d_model
    with torch.no_grad():
        model.blocks[2].attn.W_V[0] = torch.eye(m)[:, :d]
        model.blocks[2].attn.W_O[0] = -torch.eye(m)[:d]
    ov = FactoredMatrix(model.blocks[2].attn.W_V[0], model.blocks[2].attn.W_O[0])
    eig = ov.eigenvalues
    assert torch.allclose(eig.real, -torch.ones(d)) and torch.allclose(eig.imag, torch.zeros(d))
    assert ov.AB.shape == (m, m)


def test_weights_round_trip_through_safetensors(model, x, tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(model, path, extra={"config_hash": "abc"})
    loaded = load_model(path)
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot read weights file"):
        load_model(path)


# --------------------------------------------------------------------------- model.init


def _init_stats(init: str, seed: int = 0):
    """Each parameter of a paper-shaped model drawn with ``init``: (std, largest |entry|)."""
    from dataclasses import replace

    from affine_icl.config import ModelConfig

    cfg = replace(ModelConfig(), init=init)
    model = VectorTransformer(cfg).init_weights(torch.Generator().manual_seed(seed))
    stats = {n: (p.std().item(), p.abs().max().item()) for n, p in model.named_parameters()}
    values = {n: p.detach() for n, p in model.named_parameters()}
    return cfg, stats, values


def test_transformer_lens_init_is_gpt2_normal_with_zero_biases():
    cfg, stats, values = _init_stats("transformer_lens")
    std = 0.8 / cfg.d_model**0.5
    for name, (s, _) in stats.items():
        leaf = name.rpartition(".")[2]
        if leaf.startswith("W_"):
            assert s == pytest.approx(std, rel=0.1), name  # the smallest has 32 x 128 entries
        elif leaf == "w":
            assert torch.equal(values[name], torch.ones_like(values[name])), name
        else:
            assert not values[name].any(), name


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_init_is_nn_linear_uniform_by_fan_in_and_gpt2_positions(seed):
    from affine_icl.model import torch_fan_in

    cfg, stats, values = _init_stats("torch", seed)
    expected_fan_in = {"W_E": 40, "W_Q": 128, "b_K": 128, "W_O": 512, "b_O": 512}
    expected_fan_in |= {"W_in": 128, "b_in": 128, "W_out": 3072, "b_out": 3072, "W_U": 128}
    for leaf, fan_in in expected_fan_in.items():
        assert torch_fan_in(leaf, cfg) == fan_in, leaf
    for name, (s, largest) in stats.items():
        leaf = name.rpartition(".")[2]
        if leaf == "W_pos":
            assert s == pytest.approx(0.02, rel=0.1), name
        elif leaf in ("w", "b"):  # LayerNorm, as nn.LayerNorm starts
            assert torch.equal(values[name], torch.full_like(values[name], leaf == "w")), name
        else:  # U(-a, a) has std a / sqrt(3) and never leaves [-a, a]
            bound = torch_fan_in(leaf, cfg) ** -0.5
            assert largest <= bound, name
            assert largest > 0.9 * bound, name
            assert s == pytest.approx(bound / 3**0.5, rel=0.15), name


def test_an_unknown_init_is_refused_naming_the_key():
    from dataclasses import replace

    from affine_icl.config import ModelConfig

    with pytest.raises(ValueError, match="model.init: 'xavier' is not one of transformer_lens"):
        VectorTransformer(replace(ModelConfig(), init="xavier")).init_weights(torch.Generator())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {"act_fn": "gelu"},
            r"model_config says act_fn 'gelu' but the run was trained with 'relu'",
        ),
        ({"act_fn": "swish"}, r"model_config act_fn 'swish' is not one of"),
    ],
)
def test_weights_whose_metadata_disagrees_with_their_training_are_refused(
    model, tmp_path, edit, message
):
    """A file whose model_config was edited loaded silently as another network."""
    import json
    from dataclasses import asdict

    from affine_icl.errors import UnreadableInput

    cfg = {**asdict(model.cfg), **edit}
    trained = {"model": {"act_fn": "relu", "d_model": model.cfg.d_model}}
    path = tmp_path / "w.safetensors"
    save_weights(model, path, extra={"run_config": json.dumps(trained)})
    from safetensors.torch import load_file, save_file

    save_file(
        load_file(path),
        path,
        metadata={"model_config": json.dumps(cfg), "run_config": json.dumps(trained)},
    )
    with pytest.raises(UnreadableInput, match=message):
        load_model(path)
