# One rule `train` with a {run} wildcard, or with `train_batched` one rule per group of runs that
# differ only in their seed and model.init (`train_<runs>`, trained as one stacked model). Both
# are this one definition, so their recorded code is the same, and a one-run group has the same
# outputs and params as the per-run rule: switching `train_batched` on a trained one-run config
# retrains nothing.
for group in train_groups():

    rule:
        """Train with the paper's protocol, resuming from results/checkpoints/{run} after a crash.

        No input: the held-out MSE in the log is measured on the evaluation population drawn
        again from the config (affine_icl.data.heldout_batches), so touching or rewriting
        results/data/eval_population.parquet retrains nothing. The params are the settings that
        decide the weights, one per key, so a rerun reason names the changed keys; the logging
        and checkpoint cadence are not among them.
        """
        name:
            train_rule_name(group)
        output:
            **{kind: trained_by(kind, group) for kind in TRAINED},
        log:
            f"{RESULTS}/logs/train/{group_label(group)}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{group_label(group)}.tsv"
        threads: threads_of("train")
        resources:
            # every training rule, batched ones too: their gpu and cpus_per_gpu (Slurm
            # --cpus-per-gpu) come from resources.train, which the profile cannot name
            **resources_of("train"),
        params:
            **weights_params(group),
            runs=runs_of(group),
            checkpoint_roots=checkpoint_roots(group),
        script:
            "../../scripts/train.py"
