"""Reproducibility pipeline for "Interpreting Affine Recurrence Learning in GPT-style
Transformers" (Bhargav & Gu, 2024): data, model, training, activation cache, analyses, claims.

Modules are imported explicitly (``from affine_icl.model import load_model``); importing the
package itself loads nothing heavy.
"""
