"""Rule fig08_layer0_ov: Figure 8, layer-0 summed OV on residual vectors (R^2, slope)."""

from affine_icl.analysis.ov import layer0_ov_regressions, ov_scatter_points
from affine_icl.analysis.ov_fits import median_r2_vector, ov_alpha
from affine_icl.figures import plot_ov_regression
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    run = analysis_run(sm, layers=[0])
    table = layer0_ov_regressions(run.model, run.cache, seed=run.params["seed"])
    shown = median_r2_vector(table, "residual")  # a typical vector
    log.info(
        "mean R^2 %.3f, median slope %.3f; showing vector %d (median R^2)",
        table[table["source"] == "residual"]["r2"].mean(),
        ov_alpha(table),
        shown,
    )
    points = ov_scatter_points(run.model, run.cache, shown, run.params["seed"])
    write_outputs(
        sm,
        table,
        plot_ov_regression(
            points, table, "Figure 8: layer-0 OV (summed over heads) applied to residual vectors"
        ),
    )
