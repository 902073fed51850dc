"""One table of every per-head score, each beside its chance level and effect size
(:mod:`.chance`); figure rules pick heads from it, claims count from it."""

from __future__ import annotations

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from .attention import (
    key_position_scores,
    offsets_scores,
    previous_token_scores,
    same_parity_mass,
    same_parity_per_sequence,
)
from .chance import (
    label_permutation_null,
    matrix_score_nulls,
    uniform_key_share,
    uniform_offsets_share,
    uniform_same_parity_share,
)
from .interventions import qk_identity_scores
from .ov import eigenvalue_scores, ov_rank_table


def head_scores_table(
    model,
    cache,
    c: Float[Tensor, " batch"],
    pick_c_threshold: float,
    null_draws: int = 200,
    seed: int = 0,
    offsets: int = 1,
    nulls: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Columns: layer, head, and each score with its chance level (:mod:`.chance`):

    - with ``offsets`` k > 1 (a linear task of order k): ``offsets_score``, the attention mass
      on the k previous vectors, with ``offsets_chance`` (uniform) and ``offsets_ratio``;

    - ``previous_token_score`` and ``key1_score`` (attention paid to the previous and to the
      second vector), each with ``*_chance`` (the uniform share) and ``*_ratio`` (score /
      chance);
    - ``same_parity_alternating`` / ``same_parity_non_alternating`` (same-parity attention
      mass), ``same_parity_chance`` (uniform), ``checkerboard_difference`` (alternating minus
      non-alternating, chance 0) and ``checkerboard_z`` against a permutation of the
      sequences' labels (``null_draws`` draws);
    - ``eigenvalue_score`` (OV), ``qk_identity_d_model``, ``qk_identity_embedding``, each with
      ``*_null_mean``, ``*_null_sd`` and ``*_z`` against the head's own factors shuffled
      (``null_draws`` draws, seeded by ``seed``);
    - ``ov_effective_rank`` with ``ov_effective_rank_null_mean`` and ``ov_rank_ratio``
      (rank / null mean); ``ov_participation_ratio`` (of the squared singular values) with
      its null mean; ``ov_sv1_share`` and ``ov_sv1_energy`` (the top singular value's share of
      the singular values and of their squares; the latter with its null mean).

    ``nulls``: the model's matrix-score nulls if already computed
    (:func:`~.chance.matrix_score_nulls` with ``null_draws`` and ``seed``, e.g. for several
    weights snapshots at once), else computed here.
    """
    n_layers = model.cfg.n_layers
    keys = ["layer", "head"]
    table = previous_token_scores(cache, n_layers).rename(columns={"score": "previous_token_score"})
    key1 = key_position_scores(cache, n_layers, key=1).rename(columns={"score": "key1_score"})
    table = table.merge(key1.drop(columns="key"), on=keys)
    n_pos = cache["blocks.0.attn.hook_pattern"].shape[-1]
    for name, share in (
        ("previous_token", uniform_key_share(n_pos, key_offset=1)),
        ("key1", uniform_key_share(n_pos, key=1)),
    ):
        table[f"{name}_chance"] = share
        table[f"{name}_ratio"] = table[f"{name}_score"] / share
    if offsets > 1:
        scores = offsets_scores(cache, n_layers, offsets).rename(columns={"score": "offsets_score"})
        table = table.merge(scores, on=keys)
        table["offsets_chance"] = uniform_offsets_share(n_pos, offsets)
        table["offsets_ratio"] = table["offsets_score"] / table["offsets_chance"]
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
    table["same_parity_chance"] = uniform_same_parity_share(n_pos)
    table = table.merge(
        _checkerboard_null(cache, n_layers, c, pick_c_threshold, null_draws, seed), on=keys
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
        columns={
            "effective_rank": "ov_effective_rank",
            "sv1_share": "ov_sv1_share",
            "sv1_energy": "ov_sv1_energy",
            "participation_ratio": "ov_participation_ratio",
        }
    )
    table = table.merge(
        ranks[
            keys + ["ov_effective_rank", "ov_sv1_share", "ov_sv1_energy", "ov_participation_ratio"]
        ],
        on=keys,
    )
    if nulls is None:
        nulls = matrix_score_nulls([model], null_draws, seed)[0]
    table = table.merge(nulls, on=keys)
    for score in ("eigenvalue_score", "qk_identity_d_model", "qk_identity_embedding"):
        table[f"{score}_z"] = (table[score] - table[f"{score}_null_mean"]) / table[
            f"{score}_null_sd"
        ]
    table["ov_rank_ratio"] = table["ov_effective_rank"] / table["ov_effective_rank_null_mean"]
    return table[COLUMNS + (OFFSETS_COLUMNS if offsets > 1 else [])]


#: The columns a linear task of order k > 1 adds (the mass on its k previous vectors).
OFFSETS_COLUMNS = ["offsets_score", "offsets_chance", "offsets_ratio"]

#: head_scores.csv's columns: each score followed by its chance level and effect size.
COLUMNS = [
    "layer",
    "head",
    *("previous_token_score", "previous_token_chance", "previous_token_ratio"),
    *("key1_score", "key1_chance", "key1_ratio"),
    *("same_parity_alternating", "same_parity_non_alternating", "same_parity_chance"),
    *("checkerboard_difference", "checkerboard_z"),
    *(
        f"{score}{suffix}"
        for score in ("eigenvalue_score", "qk_identity_d_model", "qk_identity_embedding")
        for suffix in ("", "_null_mean", "_null_sd", "_z")
    ),
    *("ov_effective_rank", "ov_effective_rank_null_mean", "ov_rank_ratio"),
    *("ov_participation_ratio", "ov_participation_ratio_null_mean"),
    *("ov_sv1_share", "ov_sv1_energy", "ov_sv1_energy_null_mean"),
]


def _checkerboard_null(
    cache, n_layers: int, c, threshold: float, draws: int, seed: int
) -> pd.DataFrame:
    """Per head: the same-parity mass on alternating minus non-alternating sequences and its z
    against the same difference with the two groups' labels permuted."""
    alternating, non_alternating = c < -threshold, c > threshold
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for layer in range(n_layers):
        mass = same_parity_per_sequence(cache, layer)
        difference = mass[alternating].mean(0) - mass[non_alternating].mean(0)
        null = label_permutation_null(mass, alternating, non_alternating, draws, generator)
        z = (difference - null.mean(0)) / null.std(0)
        for head in range(mass.shape[1]):
            rows.append(
                {
                    "layer": layer,
                    "head": head,
                    "checkerboard_difference": float(difference[head]),
                    "checkerboard_z": float(z[head]),
                }
            )
    return pd.DataFrame(rows)
