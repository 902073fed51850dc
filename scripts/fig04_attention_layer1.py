"""Rule fig04_attention_layer1: Figure 4, layer-1 attention patterns."""

from affine_icl.analysis.attention import pattern_table
from affine_icl.figures import plot_attention_patterns
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm, layers=[1])
    table = pattern_table(run.cache, 1)
    write_outputs(
        sm,
        table,
        plot_attention_patterns(
            table, f"Figure 4: layer-1 attention patterns, mean over {len(run.pop)} sequences"
        ),
    )
