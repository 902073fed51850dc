"""Rule fig18_attention_example: Figure 18, one head's attention pattern on one sequence."""

import pandas as pd

from affine_icl.analysis.attention import pattern_table
from affine_icl.analysis.selection import top_head
from affine_icl.figures.attention import plot_attention_patterns
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    run = analysis_run(sm, layers=[0])
    (layer, head), reason = top_head(pd.read_csv(sm.input.scores), 0, "previous_token_score")
    log.info("picked %s", reason)
    table = pattern_table(run.cache, layer, samples=[0])
    table = table[table["head"] == head].assign(sample=int(run.pop.sample[0]), picked_by=reason)
    write_outputs(
        sm,
        table,
        plot_attention_patterns(
            table, f"Figure 18: attention pattern example, sample {run.pop.sample[0]}\n{reason}"
        ),
    )
