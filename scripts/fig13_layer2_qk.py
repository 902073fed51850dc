"""Rule fig13_layer2_qk: Figure 13, QK of the layer-2 head whose QK stands furthest above its
shuffled null (identity score against the same score with W_Q and W_K shuffled)."""

import sys

import pandas as pd

from affine_icl.analysis.interventions import head_qk, qk_in_vocab_basis
from affine_icl.analysis.ov import matrix_table
from affine_icl.analysis.selection import top_head
from affine_icl.claims.registry import BY_ID
from affine_icl.config import RunAnalysis
from affine_icl.figures.ov import plot_matrices
from affine_icl.rules import analysis_run, layer_missing, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    if layer_missing(sm, 2, "Figure 13"):
        sys.exit(0)  # the outputs say why
    run = analysis_run(sm, with_cache=False)
    model = run.model
    scores = pd.read_csv(sm.input.scores)
    (layer, head), reason = top_head(scores, 2, "qk_identity_d_model_z")
    log.info("picked %s", reason)
    row = scores.set_index(["layer", "head"]).loc[(layer, head)]
    min_z = run.settings.qk_identity_min_z
    # the heads the claim counts (affine_icl/claims/section4_6.py), by its own measure
    claim = BY_ID["layer2_qk_identity"]
    counted = int(claim.measured({"head_scores": scores}, RunAnalysis(run.settings)).value)
    against_chance = (
        f"identity score {row['qk_identity_d_model']:.3f} against "
        f"{row['qk_identity_d_model_null_mean']:.3f} ± {row['qk_identity_d_model_null_sd']:.3f} "
        f"with W_Q, W_K shuffled (z {row['qk_identity_d_model_z']:.1f}); heads count as "
        f"identity-like at z >= {min_z:g}: {counted} of {(scores['layer'] == 2).sum()} in layer 2"
    )
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
            f"Figure 13: layer-2 QK circuit; {reason}; {against_chance}",
            xlabel="key dimension",
            ylabel="query dimension",
        ),
    )
