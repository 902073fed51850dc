rule train:
    """Train one run with the paper's protocol; resumes from results/checkpoints after a crash."""
    input:
        population=rules.generate_data.output.population,
    output:
        weights=f"{run_dir()}/model.safetensors",
        optimizer=f"{run_dir()}/optimizer.pt",
        log=f"{run_dir()}/train_log.parquet",
    params:
        # Only this run's settings: adding another run or changing `device` retrains nothing.
        config=lambda wc: {
            **{k: config[k] for k in ("data", "model", "train")},
            "runs": [run_entry(config, wc.run)],
        },
        checkpoint_root=lambda wc: f"{RESULTS}/checkpoints/{wc.run}",
    log:
        f"{RESULTS}/logs/train/{{run}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{run}}.tsv"
    threads: config["resources"]["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train"]["mem_mb"],
        runtime=config["resources"]["train"]["runtime"],
        gpu=config["resources"]["train"]["gpu"],
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../../scripts/train.py"
