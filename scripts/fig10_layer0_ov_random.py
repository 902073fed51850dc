"""Rule fig10_layer0_ov_random: Figure 10, the layer-0 OV fit on random vectors of matched norm."""

import pandas as pd

from affine_icl.analysis.ov import ov_scatter_points
from affine_icl.figures import plot_ov_regression
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm, layers=[0])
    regressions = pd.read_csv(sm.input.regressions)  # Figure 8's table: residual and random fits
    random = regressions[regressions["source"] == "random"]
    shown = int(random.iloc[(random["r2"] - random["r2"].median()).abs().argmin()]["vector"])
    points = ov_scatter_points(run.model, run.cache, shown, run.params["seed"], source="random")
    table = random.assign(shown_in_scatter=random["vector"] == shown)
    write_outputs(
        sm,
        table,
        plot_ov_regression(
            points,
            regressions,
            "Figure 10: layer-0 OV applied to random vectors (same count and norms)",
            dict(sm.params.paper),
        ),
    )
