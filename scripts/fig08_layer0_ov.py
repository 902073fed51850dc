"""Rule fig08_layer0_ov: Figure 8, layer-0 summed OV on residual vectors (R^2, slope), in the
d_model (as folded, OV transposed, unfolded), vocab and attention-output readings (see
layer0_ov_regressions)."""

import pandas as pd

from affine_icl.analysis.ov import READINGS, ov_scatter_points
from affine_icl.analysis.ov_fits import fit_summary, median_r2_vector
from affine_icl.figures.ov import plot_ov_regression
from affine_icl.model import load_model
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    run = analysis_run(sm, layers=[0])
    seed = run.settings.seed
    unfolded = load_model(sm.input.unfolded)  # the weights before LayerNorm folding
    table = pd.read_csv(sm.input.table)  # the fits (measure_ov_regressions)
    log.info("per-vector fits by reading and source:\n%s", fit_summary(table).to_string())
    scatters = []
    for reading in READINGS:
        shown = median_r2_vector(table, "residual", reading)  # a typical vector
        log.info("%s reading: showing vector %d (median R^2)", reading, shown)
        scatters.append(
            ov_scatter_points(
                run.model,
                run.cache,
                shown,
                seed,
                reading=reading,
                inputs=run.pop.inputs,
                unfolded=unfolded,
            )
        )
    write_outputs(
        sm,
        None,
        plot_ov_regression(
            pd.concat(scatters, ignore_index=True),
            table,
            "Figure 8: layer-0 OV (summed over heads) applied to residual vectors, "
            "in five readings",
        ),
    )
