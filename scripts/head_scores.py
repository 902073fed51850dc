"""Rule head_scores: one table of every per-head score."""

from affine_icl.analysis.heads import head_scores_table
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm)
    table = head_scores_table(
        run.model,
        run.cache,
        run.pop.c,
        run.params["pick_c_threshold"],
        null_draws=run.params["null_draws"],
        seed=run.params["seed"],
    )
    write_outputs(sm, table)
