"""Rule aggregate_claims_sensitivity: the verdict sensitivity grid over all runs."""

from affine_icl.aggregate import runs_table
from affine_icl.figures.claims import plot_sensitivity_across_runs
from affine_icl.figures.style import save_figure
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    grid = runs_table(sm.params.runs, sm.input.grids)
    grid.to_csv(sm.output.csv, index=False)
    save_figure(
        plot_sensitivity_across_runs(
            grid,
            f"How each verdict depends on its definition, over {len(sm.params.runs)} run(s): "
            "runs in which it is reproduced",
        ),
        sm.output.png,
    )
