"""Rule measure_over_training: every table of a run (affine_icl/measure.py TABLES) at each weights
snapshot before the final step, one CSV per table with a step column (the final weights' tables
are the measure rules')."""

from affine_icl.analysis.population import analysis_population
from affine_icl.batches import use_threads
from affine_icl.data import read_parquet
from affine_icl.over_training import snapshot_tables, weights_by_step
from affine_icl.rules import check_provenance, claim_params, rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    use_threads(sm.threads)
    check_provenance(sm)
    settings = claim_params(sm)
    pop = analysis_population(
        read_parquet(sm.input.population, "evaluation population"),
        settings.analysis.population_length,
        settings.analysis.population_size,
    )
    weights = weights_by_step(sm.input.snapshots, sm.input.weights)
    final_step = max(weights)
    snapshots = {step: path for step, path in weights.items() if step != final_step}
    log.info("measuring the tables at steps %s (final step %d)", list(snapshots), final_step)
    for name, table in snapshot_tables(snapshots, pop, settings).items():
        table.to_csv(sm.output[name], index=False)
