"""Rule mean_ablation_layer1: MSE with layer-1 heads mean-ablated."""

from affine_icl.analysis.interventions import mean_ablation_table
from affine_icl.figures.ov import plot_mean_ablation
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm, with_cache=False)
    table = mean_ablation_table(
        run.model, run.pop.inputs, run.pop.targets, layer=1, loss_from=sm.params.loss_from
    )
    table = table.assign(n_sequences=len(run.pop))
    write_outputs(sm, table, plot_mean_ablation(table))
