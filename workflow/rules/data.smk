rule generate_data:
    """Fixed evaluation population and Figure 1's example sequences (Parquet, seeded)."""
    output:
        population=f"{RESULTS}/data/eval_population.parquet",
        examples=f"{RESULTS}/data/example_sequences.parquet",
    log:
        log_path("generate_data", run=None),
    threads: threads_of("generate_data")
    resources:
        **resources_of("generate_data"),
    params:
        **setting_params(flat_settings({"data": data_config(config).identity()})),
    script:
        "../../scripts/generate_data.py"


rule generate_task_data:
    """The evaluation population of the runs whose data settings differ from the data section
    (another task, or other ranges): results/data/<task>-<hash>/, shared by runs that agree."""
    output:
        population=f"{RESULTS}/data/{{task_key}}/eval_population.parquet",
    log:
        f"{RESULTS}/logs/generate_task_data/{{task_key}}.log",
    threads: threads_of("generate_task_data")
    resources:
        **resources_of("generate_task_data"),
    params:
        **{
            name: (lambda wc, name=name: TASK_DATA_PARAMS[wc.task_key][name])
            for name in setting_params(flat_settings({"data": asdict(DataConfig())}))
        },
    script:
        "../../scripts/generate_task_data.py"
