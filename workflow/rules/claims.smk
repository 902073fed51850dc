# What the claims are measured from: the training log and every table of the run
# (affine_icl/measure.py), the same for the verdicts and their sensitivity; no figure rule.
CLAIM_INPUTS = dict(
    train_log=trained("log"),
    **{name: measured(name) for name in MEASURED_TABLES},
)
CLAIM_PARAMS = dict(
    **CRITERIA_PARAMS,
    **setting_params({f"analysis.{key}": v for key, v in config["analysis"].items()}),
    loss_from=loss_from,
)


rule claims_sensitivity:
    """Every claim's verdict with its threshold made looser and stricter, and under the other
    definitions the paper's words allow (affine_icl/sensitivity.py)."""
    input:
        **CLAIM_INPUTS,
    output:
        csv=f"{run_dir()}/claims_sensitivity.csv",
        png=report(
            f"{run_dir()}/claims_sensitivity.png",
            caption="../report/claims_sensitivity.rst",
            category=REPORT_CLAIMS,
            subcategory="run {run}",
            labels={"item": "3. verdict sensitivity", "run": "{run}"},
        ),
    log:
        log_path("claims_sensitivity"),
    threads: threads_of("claims_sensitivity")
    resources:
        **resources_of("claims_sensitivity"),
    params:
        **CLAIM_PARAMS,
        factors=config["sensitivity"]["factors"],
    script:
        "../../scripts/claims_sensitivity.py"


rule claims:
    """Every quantitative claim of the paper: paper value, this run's value beside its chance
    level, criterion, verdict, the verdict's margin (how much stricter or looser its
    definition can be before it changes), whether chance passes its criterion, and the other
    reading of the paper's words that gets closer to its result (affine_icl/sensitivity.py)."""
    input:
        **CLAIM_INPUTS,
    output:
        csv=f"{run_dir()}/claims.csv",
        md=f"{run_dir()}/claims.md",
        html=report(
            f"{run_dir()}/claims.html",
            caption="../report/claims.rst",
            category=REPORT_CLAIMS,
            subcategory="run {run}",
            labels={"item": "1. claims", "run": "{run}"},
        ),
    log:
        log_path("claims"),
    threads: threads_of("claims")
    resources:
        **resources_of("claims"),
    params:
        **CLAIM_PARAMS,
        paper=PAPER_VALUES,
    script:
        "../../scripts/claims.py"


rule claims_over_training:
    """Every claim judged at each weights snapshot (train.snapshot_every) on its tables
    (measure_over_training), and at the end on the tables the claims read
    (affine_icl/over_training.py): a criterion changed reruns this, not the measuring."""
    input:
        **CLAIM_INPUTS,  # the final weights' tables, as the claims read them
        **{f"over_training_{name}": path for name, path in OVER_TRAINING.items()},
        weights=trained("weights"),
    output:
        csv=f"{run_dir()}/claims_over_training.csv",
        png=report(
            f"{run_dir()}/claims_over_training.png",
            caption="../report/claims_over_training.rst",
            category=REPORT_CLAIMS,
            subcategory="run {run}",
            labels={"item": "2. claims over training", "run": "{run}"},
        ),
    log:
        log_path("claims_over_training"),
    threads: threads_of("claims_over_training")
    resources:
        **resources_of("claims_over_training"),
    params:
        **CLAIM_PARAMS,
    script:
        "../../scripts/claims_over_training.py"
