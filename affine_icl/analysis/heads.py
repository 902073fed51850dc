"""One table of every per-head score; figure rules pick heads from it, claims count from it."""

from __future__ import annotations

import pandas as pd
from jaxtyping import Float
from torch import Tensor

from .attention import key_position_scores, previous_token_scores, same_parity_mass
from .interventions import qk_identity_scores
from .ov import eigenvalue_scores, ov_rank_table


def head_scores_table(
    model, cache, c: Float[Tensor, " batch"], pick_c_threshold: float
) -> pd.DataFrame:
    """Columns: layer, head, previous_token_score, key1_score (attention paid to the second
    vector), same-parity attention mass on alternating and non-alternating sequences,
    eigenvalue_score (OV), qk_identity_d_model, qk_identity_embedding, ov_effective_rank,
    ov_sv1_share."""
    n_layers = model.cfg.n_layers
    keys = ["layer", "head"]
    table = previous_token_scores(cache, n_layers).rename(columns={"score": "previous_token_score"})
    key1 = key_position_scores(cache, n_layers, key=1).rename(columns={"score": "key1_score"})
    table = table.merge(key1.drop(columns="key"), on=keys)
    parity = pd.concat(
        [same_parity_mass(cache, layer, c, pick_c_threshold) for layer in range(n_layers)]
    )
    parity = parity.pivot_table(
        index=keys, columns="group", values="same_parity_mass"
    ).reset_index()
    parity.columns.name = None
    table = table.merge(
        parity.rename(
            columns={
                "alternating": "same_parity_alternating",
                "non-alternating": "same_parity_non_alternating",
            }
        ),
        on=keys,
    )
    table = table.merge(eigenvalue_scores(model), on=keys)
    qk = (
        qk_identity_scores(model)
        .pivot_table(index=keys, columns="basis", values="identity_score")
        .reset_index()
    )
    qk.columns.name = None
    qk = qk.rename(
        columns={
            "d_model": "qk_identity_d_model",
            "embedding (W_E QK W_E^T)": "qk_identity_embedding",
        }
    )
    table = table.merge(qk, on=keys)
    ranks = ov_rank_table(model).rename(
        columns={"effective_rank": "ov_effective_rank", "sv1_share": "ov_sv1_share"}
    )
    return table.merge(ranks[keys + ["ov_effective_rank", "ov_sv1_share"]], on=keys)
