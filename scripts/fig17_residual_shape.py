"""Rule fig17_residual_shape: Figure 17, residual before/after layer 0 vs a_n + alpha a_(n-1)."""

import pandas as pd

from affine_icl.analysis.population import pick_by_sign_of_c
from affine_icl.analysis.residual import (
    crude_label,
    sequence_series,
    shape_alphas,
)
from affine_icl.figures.residual import plot_sequence_series
from affine_icl.paper import PAPER
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    run = analysis_run(sm)
    alphas = shape_alphas(pd.read_csv(sm.input.regressions))
    alpha = alphas["measured in Figure 8"]
    log.info("alpha = %.3f (median layer-0 OV slope from Figure 8)", alpha)
    index = pick_by_sign_of_c(run.pop, run.settings.pick_c_threshold)["alternating"]
    table = sequence_series(
        run.model,
        run.cache,
        run.pop.inputs,
        run.pop.targets,
        index,
        run.settings.residual_dims,
        alphas,
    )
    series = [
        "decoded residual before layer 0",
        "decoded residual after layer 0",
        *(crude_label(label, a) for label, a in alphas.items()),
        "true a_(n+1)",
    ]
    write_outputs(
        sm,
        table,
        plot_sequence_series(
            table,
            "Figure 17: residual stream before/after layer 0 (decoded), a_n + alpha a_(n-1) "
            "and the truth\n"
            f"alpha measured in Fig 8: {alpha:.2f}; the paper's: {PAPER.alpha}; "
            f"alternating sample {run.pop.sample[index]}, c = {float(run.pop.c[index]):.2f}",
            series,
        ),
    )
