"""Rule fig13_layer2_qk: Figure 13, QK of the layer-2 head whose QK is closest to the identity."""

import pandas as pd

from affine_icl.analysis.interventions import head_qk, qk_in_vocab_basis
from affine_icl.analysis.ov import matrix_table
from affine_icl.analysis.selection import top_head
from affine_icl.figures import plot_matrices
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    model = analysis_run(sm, with_cache=False).model
    scores = pd.read_csv(sm.input.scores)
    (layer, head), reason = top_head(scores, 2, "qk_identity_d_model")
    log.info("picked %s", reason)
    qk = head_qk(model, layer, head)
    table = pd.concat(
        [
            matrix_table(qk, f"W_Q W_K^T of L{layer}H{head} (d_model basis)"),
            matrix_table(
                qk_in_vocab_basis(model, qk),
                f"W_E W_Q W_K^T W_E^T of L{layer}H{head} (d_vocab basis)",
            ),
        ]
    ).assign(picked_by=reason)
    write_outputs(
        sm,
        table,
        plot_matrices(
            table,
            f"Figure 13: layer-2 QK circuit; {reason}",
            xlabel="key dimension",
            ylabel="query dimension",
        ),
    )
