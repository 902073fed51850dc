# Beyond the paper: every run against the in-context baselines, and the runs of different task
# families (data.task; configs/tasks.yaml) side by side.


rule baselines:
    """The model's held-out MSE by output position beside its task's least-squares floor,
    repeating the last term and linear extrapolation (affine_icl/analysis/baselines.py)."""
    input:
        **figure_inputs("baselines"),
    output:
        **figure_outputs("baselines"),
    log:
        log_path("baselines"),
    threads: threads_of("baselines")
    resources:
        **resources_of("baselines"),
    params:
        **analysis_params(),
        loss_from=loss_from,
    script:
        "../../scripts/baselines.py"


rule across_tasks:
    """Per task family: held-out MSE against the least-squares floor, the heads that read the
    previous vectors, negative copying per layer and the layer-1 mean-ablation ratio."""
    input:
        baselines=expand(f"{RESULTS}/runs/{{run}}/figures/baselines.csv", run=RUNS),
        claims=expand(f"{RESULTS}/runs/{{run}}/claims.csv", run=RUNS),
        head_scores=expand(f"{RESULTS}/runs/{{run}}/analysis/head_scores.csv", run=RUNS),
        mean_ablation=expand(f"{RESULTS}/runs/{{run}}/figures/mean_ablation_layer1.csv", run=RUNS),
    output:
        **aggregate_outputs("across_tasks"),
    log:
        log_path("aggregate/across_tasks", run=None),
    threads: threads_of("across_tasks")
    resources:
        **resources_of("across_tasks"),
    params:
        runs=RUNS,
        tasks=RUN_TASK_LABELS,
        negative_copying_min_z=config["analysis"]["negative_copying_min_z"],
    script:
        "../../scripts/across_tasks.py"
