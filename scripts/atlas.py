"""Rule atlas: the mechanism atlas of a sweep (one figure per section of the paper)."""

import pandas as pd

from affine_icl.atlas import atlas_table, verdicts_by_setting
from affine_icl.figures.across_runs import plot_atlas
from affine_icl.figures.style import plot_not_applicable, save_figure
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    axes = list(sm.params.axes)
    if not axes:
        raise ValueError(
            "the atlas draws the runs of a sweep: add a sweep: section (README 'Sweeps')"
        )
    runs = list(sm.params.runs)
    claims = {run: pd.read_csv(path) for run, path in zip(runs, sm.input.claims, strict=True)}
    table = atlas_table(claims, sm.params.values, sm.params.seeds)
    table.to_csv(sm.output.table, index=False)
    verdicts_by_setting(table, axes).to_csv(sm.output.by_setting, index=False)
    for section, png in zip(sm.params.sections, sm.output.figures, strict=True):
        part = table[table["section"] == section]
        if part.empty:  # the future-work claims of task families none of these runs has
            reason = f"Mechanism atlas, section {section}: no run of this sweep lists its claims"
            save_figure(plot_not_applicable(reason), png)
            continue
        title = (
            f"Mechanism atlas, section {section} claims: the measurement against each swept "
            f"setting ({len(runs)} runs; mean over seeds, bars from the lowest to the highest)"
        )
        save_figure(plot_atlas(part, axes, title), png)
