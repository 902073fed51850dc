# The mechanism atlas: with a `sweep:` section (README "Sweeps"), every claim's measurement
# against each swept setting.
rule atlas:
    """Every claim's measurement (and verdict) against each swept setting, seeds as spread: one
    figure per section of the paper, and one table of every run's claims with its settings."""
    input:
        claims=expand(f"{RESULTS}/runs/{{run}}/claims.csv", run=RUNS),
    output:
        table=f"{RESULTS}/aggregate/atlas.csv",
        figures=[atlas_figure(section) for section in SECTIONS],
    log:
        log_path("aggregate/atlas", run=None),
    benchmark:
        benchmark_path("atlas", run=None)
    conda:
        "../../envs/pipeline.yaml"
    threads: threads_of("atlas")
    resources:
        **resources_of("atlas"),
    params:
        runs=RUNS,
        axes=SWEEP_AXES,
        values=SWEEP_VALUES,
        seeds={run: run_config(config, run).train.seed for run in RUNS},
        sections=list(SECTIONS),
    script:
        "../../scripts/atlas.py"
