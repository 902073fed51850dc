"""Rule embedding_span: share of layer-0 OV output outside the row space of W_E."""

from affine_icl.analysis.ov import outside_embedding_share
from affine_icl.figures.ov import plot_share_outside
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    run = analysis_run(sm, layers=[0])
    table = outside_embedding_share(run.model, run.cache)
    log.info("mean share outside span(W_E): %.4f", table["share_outside"].mean())
    write_outputs(sm, table, plot_share_outside(table))
