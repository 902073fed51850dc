"""Rule fig11_layer1_ov: Figure 11, OV of the layer-1 head with the lowest effective rank."""

import pandas as pd

from affine_icl.analysis.ov import effective_rank, head_ov, matrix_table
from affine_icl.analysis.selection import top_head
from affine_icl.figures.ov import plot_matrices
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    model = analysis_run(sm, with_cache=False).model
    scores = pd.read_csv(sm.input.scores)
    (layer, head), reason = top_head(scores, 1, "ov_effective_rank", largest=False)
    log.info("picked %s", reason)
    ov = head_ov(model, layer, head)
    rank, singular = effective_rank(ov)
    name = f"OV of L{layer}H{head}: effective rank {rank:.2f}"
    table = matrix_table(ov, name).assign(picked_by=reason)
    fig = plot_matrices(table, f"Figure 11: {name} (exp entropy of singular values); {reason}")
    write_outputs(sm, table, fig)
    pd.DataFrame(
        {"layer": layer, "head": head, "index": range(len(singular)), "singular_value": singular}
    ).to_csv(sm.output.singular_values, index=False)
