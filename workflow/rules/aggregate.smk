# Across runs: claims that hold in k of n runs, and the head-level findings side by side.


rule aggregate_claims:
    """Every claim over all runs: value per run, mean, min, max, holds in k of n runs."""
    input:
        claims=expand(f"{RESULTS}/runs/{{run}}/claims.csv", run=RUNS),
    output:
        csv=f"{RESULTS}/aggregate/claims.csv",
        md=f"{RESULTS}/aggregate/claims.md",
        html=report(
            f"{RESULTS}/aggregate/claims.html",
            caption="../report/aggregate_claims.rst",
            category=REPORT_CLAIMS,
            subcategory="across runs",
            labels={"item": "1. claims across runs"},
        ),
    log:
        log_path("aggregate/claims", run=None),
    threads: threads_of("aggregate_claims")
    resources:
        **resources_of("aggregate_claims"),
    params:
        runs=RUNS,
    script:
        "../../scripts/aggregate_claims.py"


rule aggregate_claims_over_training:
    """Every run's claims over training in one figure: one panel per claim, one line per run."""
    input:
        tables=expand(f"{RESULTS}/runs/{{run}}/claims_over_training.csv", run=RUNS),
    output:
        csv=f"{RESULTS}/aggregate/claims_over_training.csv",
        png=report(
            f"{RESULTS}/aggregate/claims_over_training.png",
            caption="../report/aggregate_claims_over_training.rst",
            category=REPORT_CLAIMS,
            subcategory="across runs",
            labels={"item": "2. claims over training across runs"},
        ),
    log:
        log_path("aggregate/claims_over_training", run=None),
    threads: threads_of("aggregate_claims_over_training")
    resources:
        **resources_of("aggregate_claims_over_training"),
    params:
        **CRITERIA_PARAMS,
        runs=RUNS,
    script:
        "../../scripts/aggregate_claims_over_training.py"


rule aggregate_claims_sensitivity:
    """The verdict sensitivity grid over all runs: in how many runs each cell is reproduced."""
    input:
        grids=expand(f"{RESULTS}/runs/{{run}}/claims_sensitivity.csv", run=RUNS),
    output:
        csv=f"{RESULTS}/aggregate/claims_sensitivity.csv",
        png=report(
            f"{RESULTS}/aggregate/claims_sensitivity.png",
            caption="../report/aggregate_claims_sensitivity.rst",
            category=REPORT_CLAIMS,
            subcategory="across runs",
            labels={"item": "3. verdict sensitivity across runs"},
        ),
    log:
        log_path("aggregate/claims_sensitivity", run=None),
    threads: threads_of("aggregate_claims_sensitivity")
    resources:
        **resources_of("aggregate_claims_sensitivity"),
    params:
        runs=RUNS,
    script:
        "../../scripts/aggregate_claims_sensitivity.py"


rule seeds_eigenvalue_scores:
    """Figure 15 for every run, heads ordered by eigenvalue score within each layer."""
    input:
        tables=expand(f"{RESULTS}/runs/{{run}}/analysis/head_scores.csv", run=RUNS),
    output:
        **aggregate_outputs("seeds_eigenvalue_scores"),
    log:
        log_path("aggregate/seeds_eigenvalue_scores", run=None),
    threads: threads_of("seeds_eigenvalue_scores")
    resources:
        **resources_of("seeds_eigenvalue_scores"),
    params:
        runs=RUNS,
    script:
        "../../scripts/seeds_eigenvalue_scores.py"


rule seeds_head_attribution:
    """Figure 7 for every run, heads ordered by direct attribution within each layer."""
    input:
        tables=expand(f"{RESULTS}/runs/{{run}}/figures/fig07_head_attribution.csv", run=RUNS),
    output:
        **aggregate_outputs("seeds_head_attribution"),
    log:
        log_path("aggregate/seeds_head_attribution", run=None),
    threads: threads_of("seeds_head_attribution")
    resources:
        **resources_of("seeds_head_attribution"),
    params:
        runs=RUNS,
        loss_from=config["train"]["loss_from_index"],
    script:
        "../../scripts/seeds_head_attribution.py"


rule seeds_layer0_ov:
    """The layer-0 OV slope and R^2 (Figure 8) of every run."""
    input:
        tables=expand(f"{RESULTS}/runs/{{run}}/figures/fig08_layer0_ov.csv", run=RUNS),
    output:
        **aggregate_outputs("seeds_layer0_ov"),
    log:
        log_path("aggregate/seeds_layer0_ov", run=None),
    threads: threads_of("seeds_layer0_ov")
    resources:
        **resources_of("seeds_layer0_ov"),
    params:
        runs=RUNS,
        paper=PAPER_VALUES,
    script:
        "../../scripts/seeds_layer0_ov.py"
