"""Section 4.2, attention patterns: previous-vector heads in layer 0, second-vector heads in
layer 1, checkerboards in layer 2 on alternating sequences."""

from __future__ import annotations

from ..paper import PAPER
from .claim import Alternative, Claim
from .read import absolute_count, checkerboard, head_count

CLAIMS = (
    Claim(
        "layer0_previous_token_heads",
        "4.2",
        "layer-0 heads attend to the previous vector, all but the last head",
        f"{PAPER.layer0_previous_token_heads} of {PAPER.n_heads} heads",
        **head_count(
            0,
            "previous_token",
            "previous_token_ratio",
            "previous_token_min_ratio",
            "layer-0 heads whose attention on the previous vector is >= "
            "analysis.previous_token_min_ratio x the uniform share",
        ),
        alternatives=(
            Alternative(
                "absolute share >= 0.5 (former)", absolute_count(0, "previous_token_score", 0.5)
            ),
        ),
    ),
    Claim(
        "layer1_second_vector_heads",
        "4.2",
        "most layer-1 heads focus on the second vector",
        f"a majority of {PAPER.n_heads} heads",
        **head_count(
            1,
            "key1",
            "key1_ratio",
            "key1_min_ratio",
            "layer-1 heads whose attention on the second vector is >= "
            "analysis.key1_min_ratio x the uniform share",
        ),
        alternatives=(
            Alternative("absolute share >= 0.5 (former)", absolute_count(1, "key1_score", 0.5)),
        ),
        layers=2,
    ),
    Claim(
        "layer2_checkerboard",
        "4.2",
        "layer-2 patterns are checkerboards on alternating sequences, not on others",
        "checkerboard only when c < 0",
        measure=lambda t, s: checkerboard(t),
        unit="same-parity attention mass, alternating minus non-alternating, mean over "
        "layer-2 heads",
        chance_as="no difference between the groups",
        effect_as="median z over layer-2 heads against a permutation of the sequences' labels",
        bounds=(-1.0, 1.0),
        layers=3,
    ),
)
