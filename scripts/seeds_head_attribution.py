"""Rule seeds_head_attribution: direct attribution of every head in every run, ranked per layer."""

import pandas as pd

from affine_icl.aggregate import head_attribution_by_run, ranked_head_scores
from affine_icl.figures.across_runs import plot_ranked_heads_by_run
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    per_run = {r: pd.read_csv(p) for r, p in zip(sm.params.runs, sm.input.tables, strict=True)}
    attribution = head_attribution_by_run(per_run, sm.params.loss_from)
    table = ranked_head_scores(
        {r: g for r, g in attribution.groupby("run", sort=False)}, "attribution"
    )
    write_outputs(
        sm,
        table,
        plot_ranked_heads_by_run(
            table,
            "attribution",
            f"Direct attribution to a_(m+1) (Figure 7, mean over positions >= {sm.params.loss_from}) "
            "in every run; heads ordered from most positive",
        ),
    )
