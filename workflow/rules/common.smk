# Config validation and path helpers shared by every rule file.
from affine_icl.config import (
    batch_groups,
    batched_rule_name,
    coerce_command_line,
    run_config,
    run_entry,
    validate_config,
)
from affine_icl.paper import PAPER

SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")
# `--config train='{steps: 2000}'` arrives as strings: give them the schema's types.
coerce_command_line(config, workflow.config_settings.config, SCHEMA)
# One-line ConfigError naming the key, before any job is scheduled.
validate_config(config, SCHEMA)

RUNS = [entry["name"] for entry in config["runs"]]
RESULTS = "results"


wildcard_constraints:
    run="|".join(RUNS),


def run_dir(run="{run}"):
    return f"{RESULTS}/runs/{run}"


TRAINED = {"weights": "model.safetensors", "optimizer": "optimizer.pt", "log": "train_log.parquet"}


def trained(kind, run="{run}"):
    """A training output (weights, optimizer or log) of one run, batched or not."""
    return f"{run_dir(run)}/{TRAINED[kind]}"


def weights_settings(runs):
    """What decides these runs' weights, as the train rule's params: a changed logging or
    checkpoint cadence, another run, or `device` retrain nothing."""
    return {run: run_config(config, run).weights_dict() for run in runs}


PER_RUN_FIGURES = [
    "fig02_loss_curve",
    "fig03_attention_layer0",
    "fig04_attention_layer1",
    "fig05_attention_layer2_alternating",
    "fig06_attention_layer2_non_alternating",
    "fig07_head_attribution",
    "fig08_layer0_ov",
    "fig09_layer0_ov_matrix",
    "fig10_layer0_ov_random",
    "embedding_span",
    "mean_ablation_layer1",
    "fig11_layer1_ov",
    "fig12_layer2_ov",
    "fig13_layer2_qk",
    "fig14_residual_after_layer0",
    "fig15_eigenvalue_scores",
    "qk_intervention",
    "fig16_mlp_attribution",
    "fig17_residual_shape",
    "fig18_attention_example",
]


AGGREGATE_FIGURES = ["seeds_eigenvalue_scores", "seeds_head_attribution", "seeds_layer0_ov"]


def all_figures(wildcards):
    """Every figure of every run, each run's claims table, and the across-runs outputs."""
    return (
        [f"{RESULTS}/figures/fig01_sequence_types.png"]
        + [f"{run_dir(run)}/figures/{name}.png" for run in RUNS for name in PER_RUN_FIGURES]
        + [f"{run_dir(run)}/claims.md" for run in RUNS]
        + [f"{RESULTS}/aggregate/{name}.png" for name in AGGREGATE_FIGURES]
        + [f"{RESULTS}/aggregate/claims.md"]
    )


FAMILIES = ["resid", "head_result", "pattern", "mlp_out", "ln_scale", "outputs"]


def analysis_inputs(*families, scores=False):
    """Inputs of an analysis rule: folded weights, the population, cache files, head scores.

    The LayerNorm scales come with any cache family: every loaded cache carries them.
    """
    inputs = {
        "folded": f"{run_dir()}/model_folded.safetensors",
        "population": f"{RESULTS}/data/eval_population.parquet",
    }
    if families:
        inputs["cache"] = [
            f"{run_dir()}/activations/{f}.parquet" for f in dict.fromkeys([*families, "ln_scale"])
        ]
    if scores:
        inputs["scores"] = f"{run_dir()}/analysis/head_scores.csv"
    return inputs


def figure_outputs(name, run="{run}"):
    """A figure rule's PNG (in the report, with workflow/report/<name>.rst as caption) and the
    tidy table behind it; ``run=None`` for a figure of the data, not of a run (Figure 1)."""
    where = f"{run_dir(run)}/figures" if run else f"{RESULTS}/figures"
    return {
        "png": report(
            f"{where}/{name}.png",
            caption=f"../report/{name}.rst",
            category="2. Figures by run",
            subcategory=run or "data",
            labels={"run": run, "figure": name} if run else None,
        ),
        "table": f"{where}/{name}.csv",
    }


def log_path(name, run="{run}"):
    """Where the job of ``name`` logs: logs/<name>/<run>.log, or logs/<name>.log (``run=None``)."""
    return f"{RESULTS}/logs/{name}/{run}.log" if run else f"{RESULTS}/logs/{name}.log"


#: The paper's reported values (affine_icl/paper.py) as a ``params`` entry of every rule that
#: quotes or draws them: captions quote them ({{ snakemake.params.paper.final_mse }}), and a
#: changed value reruns the rule.
PAPER_VALUES = PAPER.as_dict()


def aggregate_outputs(name):
    """An across-runs figure and its table, under results/aggregate/."""
    return {
        "png": report(
            f"{RESULTS}/aggregate/{name}.png",
            caption=f"../report/{name}.rst",
            category="1. Across runs",
            labels={"figure": name},
        ),
        "table": f"{RESULTS}/aggregate/{name}.csv",
    }
