"""Rule seeds_layer0_ov: the layer-0 OV fit (Figure 8) in every run."""

import pandas as pd

from affine_icl.aggregate import ov_fit_by_run
from affine_icl.figures.across_runs import plot_ov_fit_by_run
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    table = ov_fit_by_run(
        {r: pd.read_csv(p) for r, p in zip(sm.params.runs, sm.input.tables, strict=True)}
    )
    write_outputs(sm, table, plot_ov_fit_by_run(table))
