"""Rule seeds_eigenvalue_scores: OV eigenvalue scores of every run, heads ranked per layer."""

import pandas as pd

from affine_icl.aggregate import ranked_head_scores
from affine_icl.figures.across_runs import plot_ranked_heads_by_run
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    table = ranked_head_scores(
        {r: pd.read_csv(p) for r, p in zip(sm.params.runs, sm.input.tables, strict=True)},
        "eigenvalue_score",
        ascending=True,
    )
    write_outputs(
        sm,
        table,
        plot_ranked_heads_by_run(
            table,
            "eigenvalue_score",
            "OV eigenvalue scores (Figure 15) in every run; heads ordered from most negative",
        ),
    )
