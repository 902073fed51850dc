"""Rule fig16_mlp_attribution: Figure 16, direct attribution of each MLP by position."""

from affine_icl.analysis.attribution import mlp_attribution_table
from affine_icl.figures.attribution import plot_component_attribution
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm)
    table = mlp_attribution_table(run.model, run.cache, run.pop.inputs, run.pop.targets)
    write_outputs(
        sm,
        table,
        plot_component_attribution(
            table, f"Figure 16: MLP direct attribution, mean over {len(run.pop)} sequences"
        ),
    )
