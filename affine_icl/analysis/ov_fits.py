"""The per-vector layer-0 OV fits (the table of Figure 8) read back: the vector a figure shows
and the alpha of section 4.8. Pandas only, so the claims can use it without torch."""

from __future__ import annotations

import pandas as pd


def median_r2_vector(regressions: pd.DataFrame, source: str) -> int:
    """The ``vector`` of ``source`` ("residual" / "random") whose R^2 is closest to that
    source's median R^2: a typical vector, drawn in the scatter of Figures 8 and 10.

    Of two vectors equally close, the first in table order.
    """
    fits = regressions[regressions["source"] == source]
    if fits.empty:
        raise ValueError(f"OV regressions: no {source!r} vectors")
    return int(fits.iloc[(fits["r2"] - fits["r2"].median()).abs().argmin()]["vector"])


def ov_alpha(regressions: pd.DataFrame) -> float:
    """The alpha of ``a_n -> a_n + alpha a_(n-1)`` (sections 4.4, 4.8): the median fitted slope
    over the residual vectors."""
    return float(regressions[regressions["source"] == "residual"]["slope"].median())
