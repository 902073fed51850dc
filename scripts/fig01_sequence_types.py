"""Rule fig01_sequence_types: Figure 1 and the table behind it."""

import pandas as pd

from affine_icl.figures.data import plot_sequence_types, sequence_types_table
from affine_icl.figures.style import save_figure
from affine_icl.rule_settings import settings_from_params
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    table = sequence_types_table(
        pd.read_parquet(sm.input.examples),
        settings_from_params(sm.params, "figures")["fig01_dims_shown"],
    )
    table.to_csv(sm.output.table, index=False)
    save_figure(plot_sequence_types(table), sm.output.png)
