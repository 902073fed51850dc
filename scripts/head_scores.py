"""Rule head_scores: one table of every per-head score."""

from affine_icl.analysis.heads import head_scores_table
from affine_icl.config import run_config
from affine_icl.rules import analysis_run, rule_log, write_outputs
from affine_icl.tasks import n_initial

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
        # a linear task of order k: the mass on the k previous vectors too
        offsets=n_initial(run_config(sm.config, sm.wildcards.run).data),
    )
    write_outputs(sm, table)
