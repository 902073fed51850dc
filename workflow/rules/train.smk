if not config["train_batched"]:

    rule train:
        """Train one run with the paper's protocol; resumes from results/checkpoints after a crash.

        The population (held-out MSE in the log) is `ancient`: touching or rewriting it retrains
        nothing; a changed setting that changes the weights reruns through params.weights.
        """
        input:
            population=ancient(rules.generate_data.output.population),
        output:
            **{kind: trained(kind) for kind in TRAINED},
        log:
            f"{RESULTS}/logs/train/{{run}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{{run}}.tsv"
        conda:
            "../../envs/pipeline.yaml"
        threads: config["resources"]["train"]["threads"]
        resources:
            mem_mb=config["resources"]["train"]["mem_mb"],
            runtime=config["resources"]["train"]["runtime"],
            gpu=config["resources"]["train"]["gpu"],
        params:
            runs=lambda wc: [wc.run],
            weights=lambda wc: weights_settings([wc.run]),
            checkpoint_roots=lambda wc: [f"{RESULTS}/checkpoints/{wc.run}"],
        script:
            "../../scripts/train.py"

else:
    # train_batched: one job per group of runs that differ only in their seed, training them
    # as one stacked model. Outputs are the same files as the per-run rule's.
    for group in batch_groups(config):

        rule:
            name:
                batched_rule_name(group)
            input:
                population=ancient(rules.generate_data.output.population),
            output:
                **{kind: [trained(kind, run) for run in group] for kind in TRAINED},
            log:
                f"{RESULTS}/logs/train/{'+'.join(group)}.log",
            benchmark:
                f"{RESULTS}/benchmarks/train/{'+'.join(group)}.tsv"
            conda:
                "../../envs/pipeline.yaml"
            threads: config["resources"]["train"]["threads"]
            resources:
                mem_mb=config["resources"]["train"]["mem_mb"],
                runtime=config["resources"]["train"]["runtime"],
                gpu=config["resources"]["train"]["gpu"],
            params:
                runs=group,
                weights=weights_settings(group),
                checkpoint_roots=[f"{RESULTS}/checkpoints/{run}" for run in group],
            script:
                "../../scripts/train.py"
