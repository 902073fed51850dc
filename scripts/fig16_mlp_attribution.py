"""Rule fig16_mlp_attribution: Figure 16, direct attribution of each MLP by position."""

import pandas as pd

from affine_icl.figures.attribution import plot_component_attribution
from affine_icl.rules import analysis_settings, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    table = pd.read_csv(sm.input.table)
    write_outputs(
        sm,
        None,
        plot_component_attribution(
            table,
            "Figure 16: MLP direct attribution, mean over "
            f"{analysis_settings(sm).population_size} sequences",
        ),
    )
