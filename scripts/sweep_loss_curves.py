"""Rule sweep_loss_curves: every run's held-out MSE over training, coloured by its swept setting."""

import pandas as pd

from affine_icl.atlas import final_mse_by_setting, loss_curves_table
from affine_icl.config import run_config
from affine_icl.figures.across_runs import plot_sweep_loss_curves
from affine_icl.figures.style import save_figure
from affine_icl.rules import check_trained, rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    runs = list(sm.params.runs)
    for run, path in zip(runs, sm.input.logs, strict=True):
        check_trained(path, run_config(sm.config, run), run)
    logs = {run: pd.read_parquet(path) for run, path in zip(runs, sm.input.logs, strict=True)}
    curves = loss_curves_table(logs, sm.params.values, sm.params.seeds)
    curves.to_csv(sm.output.table, index=False)
    finals = final_mse_by_setting(curves)
    finals.to_csv(sm.output.finals, index=False)
    save_figure(plot_sweep_loss_curves(curves, finals), sm.output.png)
