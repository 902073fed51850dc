"""Section 4.3, direct attribution: layer 0 pushes towards a_(m+1), layer 1 hardly at all,
layer 2 away from it."""

from __future__ import annotations

import math

from .claim import Claim, Measured
from .read import attribution, share

CLAIMS = (
    Claim(
        "layer0_attribution_positive",
        "4.3",
        "layer-0 heads add information in the direction of a_(m+1)",
        "positive",
        measure=lambda t, s: share(attribution(t, 0, s.loss_from_index) > 0),
        unit="share of layer-0 heads with positive mean attribution",
        chance_as="a coin flip per head",
        effect_as="ratio to chance",
        bounds=(0.0, 1.0),
    ),
    Claim(
        "layer1_attribution_small",
        "4.3",
        "layer-1 heads have direct attributions near zero",
        "near zero",
        measure=lambda t, s: Measured(
            float(
                attribution(t, 1, s.loss_from_index).abs().mean()
                / attribution(t, 0, s.loss_from_index).abs().mean()
            ),
            1.0,
        ),
        unit="mean |attribution| of layer-1 heads / that of layer-0 heads",
        chance_as="layers 1 and 0 alike",
        bounds=(0.0, math.inf),
        layers=2,
    ),
    Claim(
        "layer2_attribution_negative",
        "4.3",
        "layer-2 heads add information opposite to a_(m+1)",
        "negative",
        measure=lambda t, s: share(attribution(t, 2, s.loss_from_index) < 0),
        unit="share of layer-2 heads with negative mean attribution",
        chance_as="a coin flip per head",
        effect_as="ratio to chance",
        bounds=(0.0, 1.0),
        layers=3,
    ),
)
