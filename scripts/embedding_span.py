"""Rule embedding_span: share of layer-0 OV output outside the row space of W_E."""

import pandas as pd

from affine_icl.figures.ov import plot_share_outside
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    table = pd.read_csv(sm.input.table)
    log.info("mean share outside span(W_E): %.4f", table["share_outside"].mean())
    write_outputs(sm, None, plot_share_outside(table))
