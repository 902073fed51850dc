"""Rule fig12_layer2_ov: Figure 12, OV of the most negative-copying layer-2 head."""

import sys

import pandas as pd

from affine_icl.analysis.ov import head_ov, matrix_table, ov_in_vocab_basis
from affine_icl.analysis.selection import top_head
from affine_icl.figures.ov import plot_matrices
from affine_icl.rules import analysis_run, layer_missing, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    if layer_missing(sm, 2, "Figure 12"):
        sys.exit(0)  # the outputs say why
    model = analysis_run(sm, with_cache=False).model
    scores = pd.read_csv(sm.input.scores)
    (layer, head), reason = top_head(scores, 2, "eigenvalue_score", largest=False)
    log.info("picked %s", reason)
    ov = head_ov(model, layer, head)
    table = pd.concat(
        [
            matrix_table(ov, f"OV of L{layer}H{head} (d_model basis)"),
            matrix_table(
                ov_in_vocab_basis(model, ov), f"W_E OV W_U of L{layer}H{head} (d_vocab basis)"
            ),
        ]
    ).assign(picked_by=reason)
    write_outputs(sm, table, plot_matrices(table, f"Figure 12: layer-2 OV circuit; {reason}"))
