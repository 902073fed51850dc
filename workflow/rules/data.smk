rule generate_data:
    """Fixed evaluation population and Figure 1's example sequences (Parquet, seeded)."""
    output:
        population=f"{RESULTS}/data/eval_population.parquet",
        examples=f"{RESULTS}/data/example_sequences.parquet",
    log:
        log_path("generate_data", run=None),
    conda:
        "../../envs/pipeline.yaml"
    params:
        **setting_params({f"data.{key}": value for key, value in config["data"].items()}),
    script:
        "../../scripts/generate_data.py"
