"""Rule across_tasks: the runs of different task families side by side."""

import pandas as pd

from affine_icl.aggregate import across_tasks_table
from affine_icl.figures.across_runs import plot_across_tasks
from affine_icl.rules import rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    runs = list(sm.params.runs)

    def by_run(paths):
        return {run: pd.read_csv(path) for run, path in zip(runs, paths, strict=True)}

    labels = list(dict.fromkeys(sm.params.tasks.values()))  # in the order runs are listed
    order = sorted(runs, key=lambda run: labels.index(sm.params.tasks[run]))
    table = across_tasks_table(
        {run: sm.params.tasks[run] for run in order},
        by_run(sm.input.baselines),
        by_run(sm.input.claims),
        by_run(sm.input.head_scores),
        by_run(sm.input.mean_ablation),
        sm.params.negative_copying_min_z,
    )
    tasks = table["task"].nunique()
    write_outputs(
        sm,
        table,
        plot_across_tasks(
            table,
            f"The same analyses on {tasks} task families ({len(runs)} runs): does the circuit "
            "of the affine task reappear?",
        ),
    )
