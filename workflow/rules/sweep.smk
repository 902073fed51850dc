# The mechanism atlas: with a `sweep:` section (README "Sweeps"), every claim's measurement
# against each swept setting.
from affine_icl.atlas import SECTIONS, section_slug

#: The swept settings (dotted keys), and each run's values of them.
SWEEP_AXES = list(config["sweep"]["grid"]) if config.get("sweep") else []
SWEEP_VALUES = {
    run: {key: flat_settings(run_config(config, run).to_dict())[key] for key in SWEEP_AXES}
    for run in RUNS
}


def atlas_figure(section):
    return report(
        f"{RESULTS}/aggregate/atlas_{section_slug(section)}.png",
        caption="../report/atlas.rst",
        category=REPORT_ACROSS,
        subcategory="mechanism atlas",
        labels={"section": section, "figure": f"atlas_{section_slug(section)}"},
    )


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
    conda:
        "../../envs/pipeline.yaml"
    params:
        runs=RUNS,
        axes=SWEEP_AXES,
        values=SWEEP_VALUES,
        seeds={run: run_config(config, run).train.seed for run in RUNS},
        sections=list(SECTIONS),
    script:
        "../../scripts/atlas.py"
