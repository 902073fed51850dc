"""Rule claims_sensitivity: every verdict over a range of thresholds and definitions."""

from affine_icl.figures.claims import plot_sensitivity
from affine_icl.figures.style import save_figure
from affine_icl.rules import claim_inputs, rule_log
from affine_icl.sensitivity import sensitivity_table

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    tables, criteria, settings = claim_inputs(sm)
    grid = sensitivity_table(tables, criteria, settings, sm.params.factors)
    grid.to_csv(sm.output.csv, index=False)
    save_figure(
        plot_sensitivity(
            grid,
            f"How each verdict of run {sm.wildcards.run} depends on its definition "
            "(thresholds looser and stricter; ↳ the paper's other readings)",
        ),
        sm.output.png,
    )
