"""Rules fig03_attention_layer0 and fig04_attention_layer1: Figures 3 and 4, the mean attention
patterns of one layer (``params.layer``; ``params.figure`` numbers the title)."""

from affine_icl.analysis.attention import pattern_table
from affine_icl.figures import plot_attention_patterns
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    layer = sm.params.layer
    run = analysis_run(sm, layers=[layer])
    table = pattern_table(run.cache, layer)
    write_outputs(
        sm,
        table,
        plot_attention_patterns(
            table,
            f"Figure {sm.params.figure}: layer-{layer} attention patterns, "
            f"mean over {len(run.pop)} sequences",
        ),
    )
