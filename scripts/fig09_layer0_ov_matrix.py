"""Rule fig09_layer0_ov_matrix: Figure 9, the summed layer-0 OV matrix."""

import pandas as pd

from affine_icl.analysis.ov import layer_ov, matrix_table, ov_in_vocab_basis
from affine_icl.figures.ov import plot_matrices
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    model = analysis_run(sm, with_cache=False).model
    ov = layer_ov(model, 0)
    table = pd.concat(
        [
            matrix_table(ov, "sum of layer-0 OV (d_model basis)"),
            matrix_table(ov_in_vocab_basis(model, ov), "W_E (sum OV) W_U (d_vocab basis)"),
        ]
    )
    write_outputs(
        sm, table, plot_matrices(table, "Figure 9: sum of OV circuits over all layer-0 heads")
    )
