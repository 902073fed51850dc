"""Rules fig03_attention_layer0 and fig04_attention_layer1: Figures 3 and 4, the mean attention
patterns of one layer (``params.layer``; ``params.figure`` numbers the title)."""

import pandas as pd

from affine_icl.analysis.attention import pattern_table, with_uniform_weight
from affine_icl.figures.attention import plot_attention_patterns
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    layer = sm.params.layer
    run = analysis_run(sm, layers=[layer])
    table = with_uniform_weight(pattern_table(run.cache, layer))
    scores = pd.read_csv(sm.input.scores)
    # the score each figure is read for: layer 0 the previous vector, layer 1 the second one
    score, what, knob = {
        0: ("previous_token", "previous vector", "previous_token_min_ratio"),
        1: ("key1", "key 1", "key1_min_ratio"),
    }.get(layer, ("previous_token", "previous vector", "previous_token_min_ratio"))
    least = getattr(run.settings, knob)
    notes = {
        int(r["head"]): f"{what}: {r[f'{score}_score']:.2f} = {r[f'{score}_ratio']:.1f}x uniform"
        + (" (counts)" if r[f"{score}_ratio"] >= least else "")
        for _, r in scores[scores["layer"] == layer].iterrows()
    }
    write_outputs(
        sm,
        table,
        plot_attention_patterns(
            table,
            f"Figure {sm.params.figure}: layer-{layer} attention patterns, "
            f"mean over {len(run.pop)} sequences; under each head its attention on the "
            f"{what} against the uniform share (counts at >= {least:g}x)",
            notes,
        ),
    )
