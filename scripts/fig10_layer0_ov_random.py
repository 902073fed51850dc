"""Rule fig10_layer0_ov_random: Figure 10, the layer-0 OV fit on random vectors of matched norm,
in every reading of Figure 8's table."""

import pandas as pd

from affine_icl.analysis.ov import ov_scatter_points
from affine_icl.analysis.ov_fits import median_r2_vector, with_reading
from affine_icl.figures.ov import plot_ov_regression
from affine_icl.model import load_model
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm, layers=[0])
    seed = run.settings.seed
    # Figure 8's table: residual and random fits of every reading
    regressions = with_reading(pd.read_csv(sm.input.regressions))
    readings = list(dict.fromkeys(regressions["reading"]))
    shown = {reading: median_r2_vector(regressions, "random", reading) for reading in readings}
    points = pd.concat(
        [
            ov_scatter_points(
                run.model,
                run.cache,
                shown[reading],
                seed,
                source="random",
                reading=reading,
                inputs=run.pop.inputs,
                unfolded=load_model(sm.input.unfolded),
            )
            for reading in readings
        ],
        ignore_index=True,
    )
    random = regressions[regressions["source"] == "random"]
    table = random.assign(shown_in_scatter=random["vector"] == random["reading"].map(shown))
    write_outputs(
        sm,
        table,
        plot_ov_regression(
            points,
            regressions,
            "Figure 10: layer-0 OV applied to random vectors (same count and norms), "
            "in five readings",
            paper_slope=None,  # the paper's slope range is for residual vectors
        ),
    )
