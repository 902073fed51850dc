"""Known answers for the analysis steps that the rule scripts used to do themselves: the vector a
figure shows, the alpha of section 4.8, the change to the vector basis, folding with metadata."""

from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from affine_icl.analysis.interventions import qk_in_vocab_basis
from affine_icl.analysis.ov import ov_in_vocab_basis
from affine_icl.analysis.ov_fits import median_r2_vector, ov_alpha
from affine_icl.model import (
    FOLDING,
    VectorTransformer,
    fold_weights,
    load_model,
    read_metadata,
    save_weights,
    write_folded,
)


def fits(residual_r2, random_r2, residual_slope=None):
    n, m = len(residual_r2), len(random_r2)
    return pd.DataFrame(
        {
            "source": ["residual"] * n + ["random"] * m,
            "vector": [10 + i for i in range(n)] + [20 + i for i in range(m)],
            "slope": (residual_slope or [1.0] * n) + [9.0] * m,
            "intercept": 0.0,
            "r2": residual_r2 + random_r2,
        }
    )


def test_median_r2_vector_is_the_typical_vector_of_each_source():
    table = fits([0.9, 0.1, 0.5, 0.7, 0.3], [0.2, 0.6, 0.4])
    assert median_r2_vector(table, "residual") == 12  # R^2 0.5 is the median
    assert median_r2_vector(table, "random") == 22  # 0.4


def test_median_r2_vector_with_an_even_count_takes_the_first_of_a_tie():
    # median 0.375: 0.25 and 0.5 are both 0.125 away (exact in binary); the first listed wins
    assert median_r2_vector(fits([0.25, 0.5, 1.0, 0.0], [0.5]), "residual") == 10
    assert median_r2_vector(fits([0.5, 0.25, 1.0, 0.0], [0.5]), "residual") == 10


def test_median_r2_vector_without_such_vectors_says_so():
    with pytest.raises(ValueError, match="no 'random' vectors"):
        median_r2_vector(fits([0.5], []), "random")


def test_alpha_is_the_median_residual_slope():
    assert ov_alpha(fits([0.8] * 3, [0.5] * 2, residual_slope=[2.6, 2.0, 2.2])) == 2.2
    assert ov_alpha(fits([0.8] * 4, [0.5], residual_slope=[2.0, 2.5, 2.1, 2.4])) == 2.25


def _embedding_model():
    # W_E picks the first two of three model dimensions and doubles them; W_U reads them back
    W_E = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    W_U = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    return SimpleNamespace(W_E=W_E, W_U=W_U)


def test_ov_in_vocab_basis():
    m = torch.arange(9.0).reshape(3, 3)
    # e_i W_E = 2 e_i; (2 e_i) M = 2 M[i]; W_U keeps columns 0, 1 and adds 5 * column 2
    expected = 2 * (m[:2, :2] + 5 * m[:2, 2:])
    assert torch.equal(ov_in_vocab_basis(_embedding_model(), m), expected)
    ident = SimpleNamespace(W_E=torch.eye(3), W_U=torch.eye(3))
    assert torch.equal(ov_in_vocab_basis(ident, m), m)


def test_qk_in_vocab_basis():
    m = torch.arange(9.0).reshape(3, 3)
    # (2 e_i) M (2 e_j)^T = 4 M[i, j] for the two embedded dimensions
    assert torch.equal(qk_in_vocab_basis(_embedding_model(), m), 4 * m[:2, :2])


def test_write_folded_keeps_the_runs_provenance(tmp_path, tiny_model_cfg):
    model = VectorTransformer(tiny_model_cfg).init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():
        for block in model.blocks:  # a trained LayerNorm, not the identity
            block.ln1.w.mul_(1.5)
    weights = tmp_path / "model.safetensors"
    extra = {"config_hash": "abc123", "run_config": '{"seed": 1}', "step": "200"}
    save_weights(model.eval(), weights, extra=extra)
    folded, provenance = write_folded(weights, tmp_path / "folded.safetensors")
    from affine_icl.provenance import code_version

    # the run's provenance, and the code that folded it (not the trainer's)
    assert provenance == {"config_hash": "abc123", "run_config": '{"seed": 1}', **code_version()}
    meta = read_metadata(tmp_path / "folded.safetensors")
    keys = ("config_hash", "run_config", "code_commit", "code_hash", "folded")
    assert {k: meta[k] for k in keys} == {**provenance, "folded": FOLDING}
    assert "step" not in meta
    again = load_model(tmp_path / "folded.safetensors")
    assert again.cfg.normalization_type == "LNPre"
    x = torch.randn(2, 5, tiny_model_cfg.d_vocab, generator=torch.Generator().manual_seed(1))
    expected = fold_weights(model.eval())(x)
    assert torch.equal(again(x), expected) and torch.equal(folded(x), expected)
    assert (again(x) - model(x)).abs().max() < 1e-4
