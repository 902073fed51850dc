"""Reproducibility pipeline for "Interpreting Affine Recurrence Learning in GPT-style
Transformers" (Bhargav & Gu, 2024): data, model, training, activation cache, analyses, claims.

Modules are imported explicitly (``from affine_icl.model import load_model``); importing the
package itself loads nothing heavy. ``affine_icl.load_pretrained(path)`` loads a trained run or
an exported model (:mod:`affine_icl.export`).
"""


def __getattr__(name: str):
    """``affine_icl.load_pretrained`` (:func:`affine_icl.export.load_pretrained`), imported
    on first use so that importing the package stays light."""
    if name == "load_pretrained":
        from .export import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'affine_icl' has no attribute {name!r}")
