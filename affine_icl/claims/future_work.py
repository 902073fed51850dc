"""What the circuit story predicts for the recurrences of the paper's future work (section 5):
judged on runs of those task families only (``data.task``)."""

from __future__ import annotations

from .claim import FUTURE_WORK, Claim
from .read import checkerboard, head_count, mlp_by_position, share

CLAIMS = (
    Claim(
        "linear_offset_heads",
        FUTURE_WORK,
        "a linear recurrence of order k: layer-0 heads attend to the k previous vectors, as "
        "they attend to the previous one for the affine task",
        "predicted: 7 of 8 heads, as 4.2",
        **head_count(
            0,
            "offsets",
            "offsets_ratio",
            "previous_token_min_ratio",
            "layer-0 heads whose attention on the k previous vectors is >= "
            "analysis.previous_token_min_ratio x the uniform share of k keys",
        ),
    ),
    Claim(
        "diagonal_no_checkerboard",
        FUTURE_WORK,
        "a diagonal recurrence: no layer-2 checkerboard, as no sequence alternates as a whole "
        "(each component has its own c_i)",
        "predicted: no difference",
        measure=lambda t, s: checkerboard(t, absolute=True),
        unit="|same-parity attention mass, c_1 < 0 minus c_1 > 0|, mean over layer-2 heads "
        "(c_1: the first component's coefficient)",
        chance_as="no difference between the groups",
        effect_as="median z over layer-2 heads against a permutation of the sequences' labels",
        bounds=(0.0, 1.0),
        absence=True,
        layers=3,
    ),
    Claim(
        "polynomial_mlp_positions",
        FUTURE_WORK,
        "a polynomial recurrence: the MLPs, the only elementwise nonlinearity, supply the powers "
        "of a_(n-1), so they push towards a_(n+1) at every trained position",
        "predicted: every position",
        measure=lambda t, s: share(mlp_by_position(t, s.loss_from_index) > 0),
        unit="share of trained positions (>= train.loss_from_index) where the summed MLP "
        "attribution to a_(n+1) is positive",
        chance_as="a coin flip per position",
        effect_as="ratio to chance",
        bounds=(0.0, 1.0),
    ),
)
