"""Rule fig15_eigenvalue_scores: Figure 15, OV eigenvalue scores of every head."""

import pandas as pd

from affine_icl.figures.layer2 import plot_head_scores
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    columns = ["eigenvalue_score", "eigenvalue_score_null_mean", "eigenvalue_score_null_sd"]
    table = pd.read_csv(sm.input.scores)[["layer", "head", *columns, "eigenvalue_score_z"]]
    min_z = sm.params.min_z
    null = table["eigenvalue_score_null_sd"].median()
    write_outputs(
        sm,
        table,
        plot_head_scores(
            table,
            "eigenvalue_score",
            "Figure 15: OV eigenvalue score sum(λ)/sum(|λ|) per head (+1 copying, -1 negative "
            f"copying); z against the head's factors shuffled (null about 0 ± {null:.2f}); "
            f"a head counts as negative copying at z <= -{min_z:g}",
            effect="eigenvalue_score_z",
        ),
    )
