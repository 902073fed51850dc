"""Rule train: one run with the paper's protocol, resuming from its last checkpoint."""
import shutil

import torch

from affine_icl.config import run_config
from affine_icl.data import read_population
from affine_icl.rules import rule_log
from affine_icl.train import checkpoint_dir, resolve_device, save_outputs, train

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    torch.set_num_threads(sm.threads)
    cfg = run_config(sm.params.config, sm.wildcards.run)
    device = resolve_device(sm.config["device"])
    log.info("run %s, config %s, device %s, %d threads", sm.wildcards.run, cfg.hash(), device, sm.threads)
    eval_batches = read_population(sm.input.population, per_length=cfg.train.eval_per_length)
    state = train(cfg, eval_batches, device=device, checkpoint_root=sm.params.checkpoint_root)
    save_outputs(state, cfg, sm.output.weights, sm.output.optimizer, sm.output.log)
    log.info("final held-out MSE %.3e after %d steps", state.log[-1]["heldout_mse"], state.step)
    # The outputs now hold everything the checkpoint did.
    shutil.rmtree(checkpoint_dir(sm.params.checkpoint_root, cfg), ignore_errors=True)
