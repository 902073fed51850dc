"""The jaxtyping shape annotations describe the tensors the code really passes.

Nothing checks the annotations at run time in the pipeline; here the main tensor functions are
wrapped with jaxtyping's checker and called on real shapes, so an annotation that drifts from
the code (a swapped dimension, a batch axis that is not there) fails.
"""

import inspect

import pytest
import torch
from jaxtyping import TypeCheckError, jaxtyped
from test_analysis import CFG, cache_of
from test_model import random_model

from affine_icl import stacked
from affine_icl.analysis import attention, attribution, interventions, ov, residual
from affine_icl.model import VectorTransformer, fold_weights

beartype = pytest.importorskip("beartype").beartype


def checked(fn):
    """``fn`` with its annotations checked; unwrapped first, since beartype does not look
    through the ``*args, **kwargs`` wrapper of ``@torch.no_grad()``."""
    return jaxtyped(typechecker=beartype)(inspect.unwrap(fn))


@pytest.fixture(autouse=True)
def _no_grad():  # what the unwrapped @torch.no_grad() functions would have set
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def run():
    model = fold_weights(random_model(CFG, seed=2))
    x = torch.randn(4, 7, CFG.d_vocab, generator=torch.Generator().manual_seed(0))
    return model, x, cache_of(model, x)


def test_model_and_analysis_annotations_match_their_shapes(run):
    model, x, cache = run
    out = checked(VectorTransformer.forward)(model, x)
    for block in (model.embed, model.pos_embed):
        checked(type(block).forward)(block, x)
    resid = cache["blocks.0.hook_resid_post"]
    checked(type(model.ln_final).forward)(model.ln_final, resid)
    checked(type(model.unembed).forward)(model.unembed, resid[0])  # one sequence
    checked(residual.decode)(model, resid)
    checked(residual.decode)(model, resid[0])
    checked(attention.patterns)(cache, 1)
    stack, _ = checked(attribution.component_stack)(model, cache)
    d = checked(attribution.directions)(x, out)
    checked(attribution.project)(stack, model.W_U, d["target"])
    checked(ov.random_like)(checked(ov.layer_input)(cache, 0), torch.Generator().manual_seed(0))
    checked(ov.ov_in_vocab_basis)(model, checked(ov.layer_ov)(model, 0))
    checked(interventions.qk_in_vocab_basis)(model, checked(interventions.head_qk)(model, 2, 1))
    resid = checked(interventions.resid_entering)(model, x, 1)
    checked(interventions.mse_from)(model, resid, 1, out, 2)


def test_stacked_annotations_match_their_shapes():
    gen = torch.Generator().manual_seed(0)
    models = [VectorTransformer(CFG).init_weights(gen) for _ in range(2)]
    params = stacked.stack_state_dicts([m.state_dict() for m in models], CFG)
    x = torch.randn(2, 3, 6, CFG.d_vocab, generator=gen)
    out = checked(stacked.forward)(params, x, CFG)
    lengths = torch.tensor([4, 6])
    checked(stacked.position_mask)(lengths, 6, 2)
    checked(stacked.masked_losses)(out, x, lengths, 2)
    checked(stacked.masked_mse)(out[0], x[0], 2)


def test_the_checker_catches_a_shape_the_code_would_broadcast(run):
    _, x, _ = run
    attribution.directions(x, x[:1])  # unchecked: broadcasts without complaint
    with pytest.raises(TypeCheckError):
        checked(attribution.directions)(x, x[:1])
    with pytest.raises(TypeCheckError):
        checked(stacked.masked_losses)(x[None], x[None], torch.tensor([7, 7]), 2)
