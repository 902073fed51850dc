"""Rule qk_intervention: W_Q random, W_K^T = pinv(W_Q) on layer-2 heads whose QK resembles I."""

import pandas as pd

from affine_icl.analysis.interventions import qk_intervention_heads, qk_intervention_table
from affine_icl.figures.layer2 import plot_before_after
from affine_icl.paper import PAPER
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    run = analysis_run(sm, with_cache=False)
    scores = pd.read_csv(sm.input.scores)
    heads, reason = qk_intervention_heads(scores, run.params["qk_identity_min_z"])
    log.info("intervening on %s", reason)
    table = qk_intervention_table(
        run.model,
        run.pop.inputs,
        run.pop.targets,
        heads,
        sm.params.loss_from,
        seed=run.params["seed"],
    )
    table = table.assign(picked_by=reason, n_sequences=len(run.pop))
    write_outputs(
        sm,
        table,
        plot_before_after(
            table, "QK intervention: W_Q random, W_K^T = pinv(W_Q)", PAPER.qk_intervention_mse
        ),
    )
