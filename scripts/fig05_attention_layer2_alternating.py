"""Rules fig05_attention_layer2_alternating and fig06_attention_layer2_non_alternating:
Figures 5 and 6, one layer's attention patterns (``params.layer``) on one sequence of the kind
``params.sequence`` ("alternating", c < 0, or "non-alternating", c > 0)."""

import sys

from affine_icl.analysis.attention import (
    picked_sequence_patterns,
    same_parity_of_table,
    with_uniform_weight,
)
from affine_icl.config import run_config
from affine_icl.figures.attention import plot_attention_patterns
from affine_icl.rules import analysis_run, layer_missing, rule_log, write_outputs
from affine_icl.tasks import task_of

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    if layer_missing(sm, sm.params.layer, f"Figure {sm.params.figure}"):
        sys.exit(0)  # the outputs say why
    layer, kind = sm.params.layer, sm.params.sequence
    run = analysis_run(sm, layers=[layer])
    table = picked_sequence_patterns(run.cache, run.pop, layer, kind, run.settings.pick_c_threshold)
    table = with_uniform_weight(table)
    notes = {
        head: f"same parity {mass:.2f} (uniform {chance:.2f})"
        for head, (mass, chance) in same_parity_of_table(table).iterrows()
    }
    first = table.iloc[0]
    article = "an" if kind[0] in "aeiou" else "a"
    task = task_of(run_config(sm.config, sm.wildcards.run).data)
    caveat = (
        ""
        if task.alternates
        else f". Task {task.describe}: c is its first coefficient c_1, and the kind is named "
        "by the sign of c_1 alone, which does not make the whole sequence alternate"
    )
    write_outputs(
        sm,
        table,
        plot_attention_patterns(
            table,
            f"Figure {sm.params.figure}: layer-{layer} attention on {article} {kind} sequence "
            f"(sample {first['sample']}, c = {first['c']:.2f}; {first['picked_by']}); under "
            f"each head its attention mass on keys an even distance back (queries >= 2){caveat}",
            notes,
        ),
    )
