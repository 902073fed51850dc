"""Analyses of section 4: pure functions of (model, cache, params) that return pandas tables.

Conventions (TransformerLens): row vectors, ``x @ W_V[h] @ W_O[h]``; "the OV of a layer" is the
sum over its heads; ``x`` is the residual entering the layer after its (folded) LayerNorm.
Every analysis expects a model with LayerNorm and value biases folded
(:func:`affine_icl.model.fold_weights`), as the paper's section 4.1 does.
"""
