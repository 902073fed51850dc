"""Rule fig02_loss_curve: Figure 2 and the table behind it."""

import pandas as pd

from affine_icl.figures.data import loss_curve_table, plot_loss_curve
from affine_icl.figures.style import save_figure
from affine_icl.rules import check_provenance, rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    check_provenance(sm)
    table = loss_curve_table(pd.read_parquet(sm.input.log))
    table.to_csv(sm.output.table, index=False)
    save_figure(plot_loss_curve(table), sm.output.png)
