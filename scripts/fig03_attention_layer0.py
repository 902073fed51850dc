"""Rule fig03_attention_layer0: Figure 3, layer-0 attention patterns."""

from affine_icl.analysis.attention import pattern_table
from affine_icl.figures import plot_attention_patterns
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm, layers=[0])
    table = pattern_table(run.cache, 0)
    write_outputs(
        sm,
        table,
        plot_attention_patterns(
            table, f"Figure 3: layer-0 attention patterns, mean over {len(run.pop)} sequences"
        ),
    )
