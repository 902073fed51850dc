"""Rule fig10_layer0_ov_random: Figure 10, the layer-0 OV fit on random vectors of matched norm."""

import pandas as pd

from affine_icl.analysis.ov import ov_scatter_points
from affine_icl.analysis.ov_fits import median_r2_vector
from affine_icl.figures import plot_ov_regression
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm, layers=[0])
    regressions = pd.read_csv(sm.input.regressions)  # Figure 8's table: residual and random fits
    shown = median_r2_vector(regressions, "random")
    points = ov_scatter_points(run.model, run.cache, shown, run.params["seed"], source="random")
    random = regressions[regressions["source"] == "random"]
    table = random.assign(shown_in_scatter=random["vector"] == shown)
    write_outputs(
        sm,
        table,
        plot_ov_regression(
            points,
            regressions,
            "Figure 10: layer-0 OV applied to random vectors (same count and norms)",
            paper_slope=None,  # the paper's slope range is for residual vectors
        ),
    )
