# Config validation and path helpers shared by every rule file.
from affine_icl.config import run_entry, validate_config

# One-line ConfigError naming the key, before any job is scheduled.
validate_config(config, os.path.join(workflow.basedir, "schemas", "config.schema.yaml"))

RUNS = [entry["name"] for entry in config["runs"]]
RESULTS = "results"


wildcard_constraints:
    run="|".join(RUNS),


def run_dir(run="{run}"):
    return f"{RESULTS}/runs/{run}"


def all_figures(wildcards):
    per_run = ["fig02_loss_curve"]
    return [f"{RESULTS}/figures/fig01_sequence_types.png"] + [
        f"{run_dir(run)}/figures/{name}.png" for run in RUNS for name in per_run
    ]
