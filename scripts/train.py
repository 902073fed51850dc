"""Rules train / train_<runs>: one run, or runs that differ only in their seed and model.init
batched, with the paper's protocol, resuming from their last checkpoints."""

import sys

import torch

from affine_icl.checkpoints import checkpoint_dir
from affine_icl.config import run_config
from affine_icl.data import collapse_warning, heldout_batches
from affine_icl.rules import rule_log
from affine_icl.train import resolve_device, save_outputs, train_runs

sm = snakemake  # noqa: F821 - injected by Snakemake


def as_list(value):
    return [value] if isinstance(value, str) else list(value)


with rule_log(sm.log[0]) as log:
    torch.set_num_threads(sm.threads)
    # the whole config: params hold only the weights settings, so a changed logging cadence
    # reruns nothing, and a rerun of an unfinished run logs at the new cadence
    cfgs = [run_config(sm.config, run) for run in sm.params.runs]
    device = resolve_device(sm.config["device"])
    log.info(
        "runs %s (seeds %s), config %s, device %s, %d threads",
        ", ".join(sm.params.runs),
        [c.train.seed for c in cfgs],
        [c.hash() for c in cfgs],
        device,
        sm.threads,
    )
    eval_batches = heldout_batches(cfgs[0].data, per_length=cfgs[0].train.eval_per_length)
    # the bar goes to the log; a line every 5% goes to the terminal Snakemake runs in
    results = train_runs(
        cfgs,
        eval_batches,
        device=device,
        checkpoint_roots=sm.params.checkpoint_roots,
        status=sys.__stderr__,
        label="+".join(sm.params.runs),
    )
    outputs = zip(
        as_list(sm.output.weights),
        as_list(sm.output.optimizer),
        as_list(sm.output.log),
        as_list(sm.output.snapshots),
        strict=True,
    )
    runs = zip(sm.params.runs, sm.params.checkpoint_roots, results, outputs, strict=True)
    for run, root, result, paths in runs:
        save_outputs(result, *paths)
        log.info(
            "run %s: final held-out MSE %.3e after %d steps",
            run,
            result.log[-1]["heldout_mse"],
            result.step,
        )
        missing = result.missing_snapshots()
        if missing:
            log.warning(
                "run %s: no weights snapshot at steps %s (its checkpoints were written before "
                "snapshots were kept); claims_over_training uses the %d there are. To have "
                "them all, delete %s and retrain",
                run,
                missing,
                len(result.snapshots),
                checkpoint_dir(root, result.cfg),
            )
        collapse = collapse_warning(result.log)
        if collapse:
            log.warning("run %s: %s", run, collapse)
        # The final checkpoint stays (results/checkpoints/): if these outputs are deleted or
        # Snakemake dies before recording the job, a rerun rewrites them in seconds.
