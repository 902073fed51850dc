rule generate_data:
    """Fixed evaluation population and Figure 1's example sequences (Parquet, seeded)."""
    output:
        population=f"{RESULTS}/data/eval_population.parquet",
        examples=f"{RESULTS}/data/example_sequences.parquet",
    params:
        data=config["data"],
    log:
        f"{RESULTS}/logs/generate_data.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../../scripts/generate_data.py"
