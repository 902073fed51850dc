"""Rule fig14_residual_after_layer0: Figure 14, the decoded residual after layer 0 vs the truth."""

import pandas as pd

from affine_icl.analysis.residual import sequence_series
from affine_icl.figures.residual import plot_sequence_series
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm)
    pop, model = run.pop, run.model
    summary = pd.read_csv(sm.input.table)  # measure_residual_after_layer0
    table = sequence_series(
        model, run.cache, pop.inputs, pop.targets, sample=0, dims=run.settings.residual_dims
    )
    table = table[table["series"].isin(["decoded residual after layer 0", "true a_(n+1)"])]
    after = summary[summary["series"] == "decoded residual after layer 0"][
        "cosine_to_target"
    ].mean()
    write_outputs(
        sm,
        table,
        plot_sequence_series(
            table,
            f"Figure 14: residual after layer 0 decoded through ln_final and W_U vs the true output "
            f"(sample {pop.sample[0]}; population mean cosine {after:.2f})",
            ["decoded residual after layer 0", "true a_(n+1)"],
        ),
    )
