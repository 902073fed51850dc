"""Rule mean_ablation_layer1: MSE with layer-1 heads mean-ablated."""

import pandas as pd

from affine_icl.figures.ov import plot_mean_ablation
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    write_outputs(sm, None, plot_mean_ablation(pd.read_csv(sm.input.table)))
