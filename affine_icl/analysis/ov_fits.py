"""The per-vector layer-0 OV fits (the table of Figure 8) read back: the vector a figure shows,
the alpha of section 4.8 and a summary per reading. Pandas only, so the claims can use it
without torch.

The table has one row per fitted vector: reading ("d_model", "vocab", "attention output"; see
``affine_icl.analysis.ov.layer0_ov_regressions``), source ("residual" / "random"), vector,
slope, intercept, r2. A table written before the readings existed has no ``reading`` column:
all its rows are the "d_model" reading.
"""

from __future__ import annotations

import pandas as pd


def with_reading(regressions: pd.DataFrame) -> pd.DataFrame:
    """``regressions`` with a ``reading`` column ("d_model" where the table has none)."""
    if "reading" in regressions.columns:
        return regressions
    return regressions.assign(reading="d_model")


def _fits(regressions: pd.DataFrame, source: str, reading: str) -> pd.DataFrame:
    table = with_reading(regressions)
    return table[(table["source"] == source) & (table["reading"] == reading)]


def median_r2_vector(regressions: pd.DataFrame, source: str, reading: str = "d_model") -> int:
    """The ``vector`` of ``source`` ("residual" / "random") in ``reading`` whose R^2 is closest
    to the median R^2 of that source and reading: a typical vector, drawn in the scatter of
    Figures 8 and 10.

    Of two vectors equally close, the first in table order.
    """
    fits = _fits(regressions, source, reading)
    if fits.empty:
        raise ValueError(f"OV regressions: no {source!r} vectors in the {reading!r} reading")
    return int(fits.iloc[(fits["r2"] - fits["r2"].median()).abs().argmin()]["vector"])


def ov_alpha(regressions: pd.DataFrame, reading: str = "d_model") -> float:
    """The alpha of ``a_n -> a_n + alpha a_(n-1)`` (sections 4.4, 4.8): the median fitted slope
    over the residual vectors of ``reading`` (by default the paper's d_model reading); NaN if
    there are none."""
    return float(_fits(regressions, "residual", reading)["slope"].median())


def fit_summary(regressions: pd.DataFrame) -> pd.DataFrame:
    """One row per (reading, source), in table order: n_vectors, mean_r2, median_slope,
    slope_q25, slope_q75 (the quartiles of the per-vector slopes)."""
    groups = with_reading(regressions).groupby(["reading", "source"], sort=False)
    summary = groups.agg(
        n_vectors=("r2", "size"),
        mean_r2=("r2", "mean"),
        median_slope=("slope", "median"),
        slope_q25=("slope", lambda s: s.quantile(0.25)),
        slope_q75=("slope", lambda s: s.quantile(0.75)),
    )
    return summary.reset_index()
