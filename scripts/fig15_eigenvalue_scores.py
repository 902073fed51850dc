"""Rule fig15_eigenvalue_scores: Figure 15, OV eigenvalue scores of every head."""

import pandas as pd

from affine_icl.figures import plot_head_scores
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    table = pd.read_csv(sm.input.scores)[["layer", "head", "eigenvalue_score"]]
    write_outputs(
        sm,
        table,
        plot_head_scores(
            table,
            "eigenvalue_score",
            "Figure 15: OV eigenvalue score sum(λ)/sum(|λ|) per head (+1 copying, -1 negative copying)",
        ),
    )
