"""Rule claims_over_training: every claim measured at each weights snapshot and judged at the end
from the tables the claims rule reads."""

import torch

from affine_icl.aggregate import verdict_settled_since
from affine_icl.analysis.population import analysis_population
from affine_icl.claims.registry import CLAIMS
from affine_icl.config import run_config
from affine_icl.data import read_parquet
from affine_icl.figures.claims import plot_claims_over_training
from affine_icl.figures.style import save_figure
from affine_icl.over_training import claims_over_training, no_snapshots_reason, weights_by_step
from affine_icl.rules import claim_inputs, rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    torch.set_num_threads(sm.threads)
    final, criteria, settings = claim_inputs(sm)  # the final weights' tables
    pop = analysis_population(
        read_parquet(sm.input.population, "evaluation population"),
        settings.analysis.population_length,
        settings.analysis.population_size,
    )
    weights = weights_by_step(sm.input.snapshots, sm.input.weights)
    log.info("measuring the claims at steps %s", list(weights))
    train = run_config(sm.config, sm.wildcards.run).train
    reason = no_snapshots_reason(train.steps, train.snapshot_every)
    if len(weights) == 1:
        log.warning(
            "run %s has no weights snapshot before its final step (%s): only that step is measured",
            sm.wildcards.run,
            reason,
        )
    table = claims_over_training(weights, pop, final["train_log"], criteria, settings, final)
    table.to_csv(sm.output.csv, index=False)
    settled = verdict_settled_since(table.assign(run=sm.wildcards.run))
    save_figure(
        plot_claims_over_training(
            table.assign(run=sm.wildcards.run),
            criteria,
            {c.id: c.reported for c in CLAIMS},
            f"Claims over training, run {sm.wildcards.run}: each claim measured at every "
            f"weights snapshot ({len(weights)} steps)"
            if len(weights) > 1
            else f"Claims of run {sm.wildcards.run} at its final step only: no weights "
            f"snapshot before it ({reason})",
            settled.set_index("claim_id")["settled_since"].to_dict() if len(weights) > 1 else None,
        ),
        sm.output.png,
    )
