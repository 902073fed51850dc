"""In-context baselines: the model's error by output position beside simple predictors.

As Garg et al. (2022) compare a transformer trained in context with least squares, every run is
compared, position by position, with predictors that see the same terms ``a_0 .. a_n`` and
predict ``a_(n+1)``:

- ``least squares``: the task family's own solver fitted to the terms seen so far
  (:func:`affine_icl.tasks.least_squares`); exact wherever the terms identify the recurrence,
  so it is the floor a model can reach on this noise-free data;
- ``repeat last``: ``a_n``;
- ``linear extrapolation``: ``2 a_n - a_(n-1)`` (``a_0`` at position 0).

The error is the MSE over sequences and vector components, as in training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from ..config import DataConfig
from ..tasks import least_squares

#: The predictors and what each predicts at output position n, in plotting order.
PREDICTORS: dict[str, str] = {
    "model": "the trained model",
    "least squares": "the task's own least-squares fit of the terms seen (the floor)",
    "repeat last": "a_n",
    "linear extrapolation": "2 a_n - a_(n-1)",
}


def baseline_predictions(
    cfg: DataConfig, inputs: Float[Tensor, "batch pos dim"]
) -> dict[str, Float[Tensor, "batch pos dim"]]:
    """Each baseline's prediction of ``a_(n+1)`` at every position ``n`` from ``a_0 .. a_n``
    (float64; least squares NaN where the terms seen give no equation yet)."""
    x = inputs.double()
    previous = torch.cat([x[:, :1], x[:, :-1]], dim=1)  # a_(n-1), a_0 at position 0
    return {
        "least squares": least_squares(cfg, x),
        "repeat last": x,
        "linear extrapolation": 2 * x - previous,
    }


def mse_by_position(
    predictions: dict[str, Tensor], targets: Float[Tensor, "batch pos dim"], loss_from: int
) -> pd.DataFrame:
    """One row per (predictor, position): ``mse`` over sequences and components, ``trained``
    (the position is in the training loss: ``>= loss_from``) and the predictor's ``means``."""
    rows = []
    for name, predicted in predictions.items():
        error = ((predicted.double() - targets.double()) ** 2).mean((0, 2))
        for position, mse in enumerate(error.tolist()):
            rows.append(
                {
                    "predictor": name,
                    "position": position,
                    "mse": mse,
                    "trained": position >= loss_from,
                    "means": PREDICTORS[name],
                }
            )
    return pd.DataFrame(rows)


def trained_mse(table: pd.DataFrame) -> pd.Series:
    """Each predictor's MSE over the trained positions (the mean of their per-position MSEs,
    each over the same sequences), NaN where a predictor has no value there."""
    trained = table[table["trained"]]
    return trained.groupby("predictor", sort=False)["mse"].agg(
        lambda v: v.mean() if v.notna().all() else np.nan
    )
