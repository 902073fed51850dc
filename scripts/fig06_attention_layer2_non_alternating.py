"""Rule fig06_attention_layer2_non_alternating: Figure 6, layer-2 patterns on one non-alternating sequence."""

from affine_icl.analysis.attention import picked_sequence_patterns
from affine_icl.figures import plot_attention_patterns
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm, layers=[2])
    table = picked_sequence_patterns(
        run.cache, run.pop, 2, "non-alternating", run.params["pick_c_threshold"]
    )
    first = table.iloc[0]
    write_outputs(
        sm,
        table,
        plot_attention_patterns(
            table,
            f"Figure 6: layer-2 attention on a non-alternating sequence "
            f"(sample {first['sample']}, c = {first['c']:.2f}; {first['picked_by']})",
        ),
    )
