"""Rule fig07_head_attribution: Figure 7, direct attribution per head and position."""

from affine_icl.analysis.attribution import head_attribution_table
from affine_icl.figures.attribution import plot_component_attribution
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm)
    table = head_attribution_table(run.model, run.cache, run.pop.inputs, run.pop.targets)
    write_outputs(
        sm,
        table,
        plot_component_attribution(
            table,
            f"Figure 7: direct attribution per head, mean over {len(run.pop)} sequences "
            "(red: towards the target, blue: against)",
        ),
    )
