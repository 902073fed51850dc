"""Sharing a trained run: export with a model card, one-call loading, interactive views."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import with_train
from test_model import random_model
from transformer_lens import FactoredMatrix

import affine_icl
from affine_icl.activations import activation_cache
from affine_icl.analysis.attention import attention_views
from affine_icl.analysis.population import Population
from affine_icl.config import ModelConfig
from affine_icl.data import batches_from_table, population_table
from affine_icl.export import export_model
from affine_icl.model import fold_weights
from affine_icl.train import save_outputs, train
from affine_icl.views import attention_page

CLAIMS = pd.DataFrame(
    {
        "claim_id": ["final_mse", "layer2_negative_copying"],
        "paper": ["1e-4", "8 of 8 heads"],
        "measured": [3.2e-3, 6.0],
        "verdict": ["not reproduced", "differs in degree"],
        "margin": ["fails until x0.4 looser", "differs from x0.5 to x2"],
        "chance_note": ["", "chance passes this criterion: the verdict cannot tell"],
    }
)


@pytest.fixture
def trained_run(tiny_run_cfg, tmp_path):
    cfg = with_train(tiny_run_cfg, steps=20, eval_every=20)
    batches = batches_from_table(population_table(cfg.data))
    result = train(cfg, batches, progress=False)
    run = tmp_path / "runs" / "tiny"
    paths = run / "model.safetensors", run / "optimizer.pt", run / "train_log.parquet"
    save_outputs(result, *paths)
    return run, result


def test_export_round_trip_loads_the_same_model(trained_run, tmp_path):
    run, result = trained_run
    out = tmp_path / "models" / "tiny"
    log = pd.read_parquet(run / "train_log.parquet")
    paths = export_model(run / "model.safetensors", log, CLAIMS, out, "tiny")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert paths["config.json"] == out / "config.json"

    x = torch.randn(2, 6, result.model.cfg.d_vocab, generator=torch.Generator().manual_seed(0))
    expected = result.model(x)
    for where in (out, run, out / "model.safetensors"):  # export dir, run dir, file
        model = affine_icl.load_pretrained(where)
        assert torch.equal(model(x), expected), where
    # TransformerLens' tools work on the loaded model
    model = affine_icl.load_pretrained(out)
    output, cache = model.run_with_cache(x)  # an ActivationCache, as HookedTransformer's
    assert cache.stack_head_results(apply_ln=True).shape[0] == 2 * 4  # n_layers x n_heads
    folded = fold_weights(model)
    torch.testing.assert_close(folded(x), output, rtol=1e-4, atol=1e-5)
    ov = FactoredMatrix(folded.blocks[0].attn.W_V[0], folded.blocks[0].attn.W_O[0])
    assert ov.shape == (32, 32)

    config = json.loads((out / "config.json").read_text())
    assert config["steps_trained"] == 20 and config["train"]["seed"] == 3
    assert config["model"]["d_model"] == 32 and config["data"]["vector_dim"] == 6
    assert config["final_heldout_mse"] == pytest.approx(log["heldout_mse"].dropna().iloc[-1])
    assert set(config["library_versions"]) >= {"python", "torch", "transformer_lens"}
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: affine-icl" in front and "- transformer_lens" in front
    assert "license: mit" in front
    assert "20 AdamW steps" in card and "not reproduced: 1, differs in degree: 1" in card
    assert f'load_pretrained("{out}")' in card
    assert (
        "| layer2_negative_copying | 8 of 8 heads | 6 | differs in degree | differs from x0.5 to "
        "x2; chance passes this criterion: the verdict cannot tell |"
    ) in card


def test_load_pretrained_names_what_is_missing(trained_run, tmp_path):
    run, _ = trained_run
    with pytest.raises(FileNotFoundError, match="does not exist: pass a run directory"):
        affine_icl.load_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty holds no model.safetensors"):
        affine_icl.load_pretrained(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"optimizer.pt is not a .safetensors file.*pickled"):
        affine_icl.load_pretrained(run / "optimizer.pt")


def _props(page: str) -> dict:
    """The props circuitsvis renders: the JSON after the element name in the render call."""
    found = re.search(r"CircuitsVis\.AttentionHeads,\s*(\{.*\})\s*\)", page, flags=re.S)
    return json.loads(found[1])


def test_attention_page_carries_every_pattern_value():
    cfg = ModelConfig(d_vocab=6, d_model=16, d_head=4, n_heads=2, d_mlp=32, n_layers=2, n_ctx=8)
    model = random_model(cfg)
    gen = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(5, 6, 6, generator=gen), torch.randn(5, 6, 6, generator=gen)
    c = torch.tensor([0.3, -0.9, 0.8, -0.2, 0.1])
    pop = Population(inputs, targets, c, np.arange(10, 15))
    cache = activation_cache(model, inputs)
    views = attention_views(cache, pop, 1, threshold=0.5)
    labels = list(views)
    assert labels == ["Fig 5, #11, c=-0.90", "Fig 6, #12, c=0.80", "mean of 5"]
    page = attention_page(views, 1, "title <b>", "intro")
    assert page.startswith("<!DOCTYPE html>") and "title &lt;b&gt;" in page
    assert "unpkg.com" not in page  # the viewer is inlined: the page works offline
    props = _props(page)
    assert props["tokens"] == [f"a_{p}" for p in range(6)]
    assert props["attentionHeadNames"][0] == f"{labels[0]}: L1H0"
    assert len(props["attentionHeadNames"]) == 3 * 2
    pattern = cache["blocks.1.attn.hook_pattern"]
    expected = torch.cat([pattern[1], pattern[2], pattern.mean(0)])
    np.testing.assert_allclose(np.array(props["attention"]), expected.numpy(), rtol=1e-6)
