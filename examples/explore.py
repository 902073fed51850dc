# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring a trained affine-recurrence model
#
# A walkthrough with TransformerLens tools: load an exported run, predict a sequence, cache
# its activations, score the heads, and compute one OV eigenvalue score by hand. It runs as a
# plain script (`python examples/explore.py`) or opens as a notebook (jupytext, percent format).
# The model is `results/models/seed0` (made by `snakemake`) unless `AFFINE_ICL_MODEL` names
# another export or run directory.

# %%
import json
import os
from pathlib import Path

import torch
from transformer_lens import FactoredMatrix

from affine_icl import load_pretrained
from affine_icl.analysis.attention import key_position_scores, previous_token_scores
from affine_icl.analysis.ov import eigenvalue_scores
from affine_icl.config import DataConfig
from affine_icl.data import sample_batch
from affine_icl.model import fold_weights

# found from this file (or, in a notebook, the working directory) upwards, so the walkthrough
# runs from examples/ as well as from the repository root
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
REPO = next((d for d in [HERE, *HERE.parents] if (d / "config.yaml").is_file()), HERE)
path = Path(os.environ.get("AFFINE_ICL_MODEL", REPO / "results" / "models" / "seed0"))
model = load_pretrained(path)
print(f"loaded {path}: {model.cfg.n_layers} layers, {model.cfg.n_heads} heads per layer")
# the data settings it was trained on (an export's config.json), else the paper's
config = path / "config.json"
settings = json.loads(config.read_text())["data"] if config.is_file() else {}
data = DataConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})

# %% [markdown]
# ## Predict a sequence
#
# Sequences are `a_n = c a_(n-1) + d` with vectors `a_n` embedded in `d_vocab` dimensions;
# the output at position n predicts `a_(n+1)`. Draw a few from the training distribution.

# %%
length = data.length_range[1]
batch = sample_batch(data, 8, length, torch.Generator().manual_seed(0))
inputs, targets = batch.terms[:, :-1], batch.terms[:, 1:]  # [8, length, d_vocab]
print("c of the 8 sequences:", [round(c, 2) for c in batch.c.tolist()])
with torch.no_grad():
    predicted = model(inputs)
mse = ((predicted - targets)[:, 2:] ** 2).mean().item()
print(f"MSE over positions 2..{length - 1} of 8 sequences of length {length}: {mse:.3g}")

# %% [markdown]
# ## Cache activations and score the heads
#
# Fold LayerNorm and value biases (as every analysis does), run with the cache, and measure
# how much attention each head pays to the previous vector and to the second one.

# %%
folded = fold_weights(model)
_, cache = folded.run_with_cache(inputs)  # an ActivationCache, as HookedTransformer gives
n_layers = folded.cfg.n_layers
previous = previous_token_scores(cache, n_layers).rename(columns={"score": "previous vector"})
second = key_position_scores(cache, n_layers, key=1).rename(columns={"score": "second vector"})
scores = previous.merge(second.drop(columns="key"), on=["layer", "head"])
print(scores.round(3).to_string(index=False))  # attention share; uniform is 1/(q+1)

# %% [markdown]
# ## One OV eigenvalue score
#
# The paper's negative-copying heads have OV circuits whose eigenvalues are mostly negative.
# The eigenvalue score is `sum(lambda) / sum(|lambda|)` of the OV circuit's nonzero
# eigenvalues (TransformerLens' `FactoredMatrix` computes them without forming the
# d_model x d_model matrix).

# %%
last = folded.cfg.n_layers - 1
ov = FactoredMatrix(folded.blocks[last].attn.W_V[0], folded.blocks[last].attn.W_O[0])
eigenvalues = ov.eigenvalues
score = (eigenvalues.sum() / eigenvalues.abs().sum()).real.item()
print(f"layer {last} head 0: OV eigenvalue score {score:.3f} (-1: pure negative copying)")
# the pipeline's Figure 15 computes the same for every head
every = eigenvalue_scores(folded)
print(every.pivot(index="layer", columns="head", values="eigenvalue_score").round(2))
assert abs(every.iloc[last * folded.cfg.n_heads]["eigenvalue_score"] - score) < 1e-6
