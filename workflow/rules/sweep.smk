# The mechanism atlas: with a `sweep:` section (README "Sweeps"), every claim's measurement
# against each swept setting.
rule atlas:
    """Every claim's measurement (and verdict) against each swept setting, seeds as spread: one
    figure per section of the paper, and one table of every run's claims with its settings."""
    input:
        claims=expand(f"{RESULTS}/runs/{{run}}/claims.csv", run=RUNS),
    output:
        table=f"{RESULTS}/aggregate/atlas.csv",
        by_setting=f"{RESULTS}/aggregate/atlas_by_setting.csv",
        figures=[atlas_figure(section) for section in SECTIONS],
    log:
        log_path("aggregate/atlas", run=None),
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


rule sweep_loss_curves:
    """Every run's held-out MSE over training, coloured by its swept setting (seeds thin, their
    median thick), and each setting's final MSE across seeds."""
    input:
        logs=expand(trained("log", "{run}"), run=RUNS),
    output:
        png=report(
            f"{RESULTS}/aggregate/sweep_loss_curves.png",
            caption="../report/sweep_loss_curves.rst",
            category=REPORT_ACROSS,
            subcategory="mechanism atlas",
            labels={"figure": "sweep_loss_curves"},
        ),
        table=f"{RESULTS}/aggregate/sweep_loss_curves.csv",
        finals=f"{RESULTS}/aggregate/sweep_final_mse.csv",
    log:
        log_path("aggregate/sweep_loss_curves", run=None),
    threads: threads_of("sweep_loss_curves")
    resources:
        **resources_of("sweep_loss_curves"),
    params:
        runs=RUNS,
        values=SWEEP_VALUES,
        seeds={run: run_config(config, run).train.seed for run in RUNS},
        paper=PAPER_VALUES,
    script:
        "../../scripts/sweep_loss_curves.py"
