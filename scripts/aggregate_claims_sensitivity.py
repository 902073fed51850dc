"""Rule aggregate_claims_sensitivity: the verdict sensitivity grid over all runs."""

import pandas as pd

from affine_icl.figures import plot_sensitivity_across_runs, save_figure
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    grid = pd.concat(
        [
            pd.read_csv(path).assign(run=run)
            for run, path in zip(sm.params.runs, sm.input.grids, strict=True)
        ],
        ignore_index=True,
    )
    grid.to_csv(sm.output.csv, index=False)
    save_figure(
        plot_sensitivity_across_runs(
            grid,
            f"How each verdict depends on its definition, over {len(sm.params.runs)} run(s): "
            "runs in which it is reproduced",
        ),
        sm.output.png,
    )
