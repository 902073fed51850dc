"""Rule qk_intervention: W_Q random, W_K^T = pinv(W_Q) on layer-2 heads whose QK resembles I."""

import pandas as pd

from affine_icl.figures.layer2 import plot_before_after
from affine_icl.paper import PAPER
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    table = pd.read_csv(sm.input.table)
    log.info("intervened on %s", table["picked_by"].iloc[0])
    write_outputs(
        sm,
        None,
        plot_before_after(
            table, "QK intervention: W_Q random, W_K^T = pinv(W_Q)", PAPER.qk_intervention_mse
        ),
    )
