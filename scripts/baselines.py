"""Rule baselines: the model's held-out MSE by output position beside the task's least-squares
floor, repeating the last term and linear extrapolation."""

import torch

from affine_icl.analysis.baselines import baseline_predictions, mse_by_position
from affine_icl.config import run_config
from affine_icl.figures.data import plot_baselines
from affine_icl.rules import analysis_run, rule_log, write_outputs
from affine_icl.tasks import describe

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    run = analysis_run(sm, with_cache=False)
    data = run_config(sm.config, sm.wildcards.run).data
    with torch.no_grad():
        predictions = {"model": run.model(run.pop.inputs)}
    predictions.update(baseline_predictions(data, run.pop.inputs))
    table = mse_by_position(predictions, run.pop.targets, sm.params.loss_from)
    title = (
        f"Run {sm.wildcards.run}, {describe(data)} task: the model against in-context "
        f"baselines, by output position ({len(run.pop)} sequences of {run.pop.inputs.shape[1]})"
    )
    write_outputs(sm, table, plot_baselines(table, sm.params.loss_from, title))
