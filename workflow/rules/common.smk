# Config validation and path helpers shared by every rule file.
import functools
import sys
from dataclasses import asdict

import yaml

import affine_icl
from affine_icl.config import (
    TRAINING_ARITHMETIC,
    DataConfig,
    batch_groups,
    batched_rule_name,
    data_config,
    flat_settings,
    run_config,
)
from affine_icl.validation import coerce_command_line, replace_criteria, validate_config
from affine_icl.rule_settings import (
    check_resource_rules,
    rule_resources,
    setting_params,
    weights_settings,
)
from affine_icl.atlas import section_slug
from affine_icl.claims.registry import SECTIONS, check_criteria, judged_claims
from affine_icl.figures.registry import CACHE_FAMILIES, CLAIMS, FIGURES, paper_place
from affine_icl.measure import TABLES as MEASURED_TABLES
from affine_icl.paper import PAPER
from affine_icl.provenance import code_version, script_code_hash
from affine_icl.rules import protocol_summary, report_runs
from affine_icl.tasks import label as task_label
from affine_icl.tasks import population_key

SCHEMA = os.path.join(workflow.basedir, "schemas", "config.schema.yaml")
# An editable install ties every clone that uses its virtual environment to the clone it was
# made from: say so when the library imported is not this repository's.
_LIBRARY = os.path.dirname(os.path.dirname(os.path.abspath(affine_icl.__file__)))
if not os.path.samefile(_LIBRARY, os.path.dirname(os.path.abspath(workflow.basedir))):
    print(
        f"warning: affine_icl is imported from {_LIBRARY}, not from this repository "
        f"({os.path.dirname(os.path.abspath(workflow.basedir))}): the jobs run that copy's "
        "code; run `pip install -e .` here (or use this clone's own virtual environment)",
        file=sys.stderr,
    )
# `--config train='{steps: 2000}'` arrives as strings: give them the schema's types.
coerce_command_line(config, workflow.config_settings.config, SCHEMA)
# A criterion from --configfile or --config replaces config.yaml's whole (Snakemake merges
# config files key by key, which would keep the default's other bound beside it).
replace_criteria(
    config,
    [
        *(yaml.safe_load(open(f)) or {} for f in workflow.config_settings.configfiles or []),
        workflow.config_settings.config or {},
    ],
)
# One-line ConfigError naming the key, before any job is scheduled; the criteria's claim ids
# against the claims' registry.
validate_config(config, SCHEMA)
check_criteria(config["claims"])
# The code this workflow runs (commit, library hash), for the report's front page; set after
# validation, as it is no setting.
config["code_version"] = code_version()

RUNS = [entry["name"] for entry in config["runs"]]
#: Every output is under it (runs/, data/, aggregate/, logs/, ...): config `results`.
RESULTS = os.path.normpath(config["results"])
#: For the report's front page: each run's steps and departures from the paper's protocol,
#: from its weights where trained (what was trained, not the config at report time), else
#: from the config; and the protocol itself. Both from affine_icl, so the page keeps no copy.
config["report_runs"] = report_runs(config, RESULTS)
config["protocol"] = protocol_summary()


#: Each run's evaluation population: None (the shared results/data/eval_population.parquet) or
#: the key of its own, results/data/<key>/ (affine_icl.tasks.population_key).
POPULATION_KEYS = {run: population_key(config, run) for run in RUNS}
#: The generate_task_data params of each key: every data setting (all DataConfig fields).
TASK_DATA_PARAMS = {
    key: setting_params(flat_settings({"data": asdict(run_config(config, run).data)}))
    for run, key in POPULATION_KEYS.items()
    if key is not None
}


wildcard_constraints:
    run="|".join(RUNS),
    task_key="|".join(TASK_DATA_PARAMS) or "no-task-key",


#: The task families of the configured runs (data.task), and as labels with their order or
#: degree (linear2, polynomial3): a config with more than one label gets across_tasks.
RUN_TASKS = {run: run_config(config, run).data.task for run in RUNS}
RUN_TASK_LABELS = {run: task_label(run_config(config, run).data) for run in RUNS}


#: The criteria (claims.*) of the claims some run judges, one param each: a future-work claim
#: keys no job of a config without its task family.
JUDGED = {c.id for task in set(RUN_TASKS.values()) for c in judged_claims(task)}
CRITERIA_PARAMS = setting_params(
    {f"claims.{claim}": v for claim, v in config["claims"].items() if claim in JUDGED}
)


def threads_of(rule):
    """The rule's threads from config resources (resources.default where it is not named)."""
    return rule_resources(config, rule)["threads"]


def resources_of(rule):
    """The rule's mem_mb, runtime (minutes) and, for a GPU rule, gpu and cpus_per_gpu."""
    return {k: v for k, v in rule_resources(config, rule).items() if k != "threads"}


def loss_from(wildcards):
    """The run's train.loss_from_index (a run may override it, e.g. for its task)."""
    return run_config(config, wildcards.run).train.loss_from_index


def population(wildcards):
    """The evaluation population a run is analysed on (its task's; see POPULATION_KEYS)."""
    key = POPULATION_KEYS[wildcards.run]
    where = f"{RESULTS}/data" if key is None else f"{RESULTS}/data/{key}"
    return f"{where}/eval_population.parquet"


def run_dir(run="{run}"):
    return f"{RESULTS}/runs/{run}"


TRAINED = {
    "weights": "model.safetensors",
    "optimizer": "optimizer.pt",
    "log": "train_log.parquet",
    "snapshots": "snapshots",  # directory: step-<n>.safetensors every train.snapshot_every
}


def trained(kind, run="{run}"):
    """A training output (weights, optimizer, log or snapshots) of one run, batched or not."""
    return f"{run_dir(run)}/{TRAINED[kind]}"


def train_groups():
    """The training jobs' run groups: ``[None]`` (one rule with a {run} wildcard), or with
    `train_batched` the groups of runs that differ only in their seed and model.init."""
    return batch_groups(config) if config["train_batched"] else [None]


def train_rule_name(group):
    return "train" if group is None else batched_rule_name(group)


def group_label(group):
    """A training job's log and benchmark name: its run, or its runs joined by '+'."""
    return "{run}" if group is None else "+".join(group)


def trained_by(kind, group):
    """The train job's outputs of one kind (the snapshots are a directory per run)."""
    mark = directory if kind == "snapshots" else str
    if group is None:
        return mark(trained(kind))
    return [mark(trained(kind, run)) for run in group]


def runs_of(group):
    return (lambda wc: [wc.run]) if group is None else group


def checkpoint_roots(group):
    if group is None:
        return lambda wc: [f"{RESULTS}/checkpoints/{wc.run}"]
    return [f"{RESULTS}/checkpoints/{run}" for run in group]


@functools.cache
def _run_weights_params(run):
    return setting_params(weights_settings(config, [run]))


def weights_params(group):
    """What decides the weights, one param per key (affine_icl.rule_settings.setting_params): a
    changed logging or checkpoint cadence, another run, or `device` retrain nothing."""
    if group is not None:
        return setting_params(weights_settings(config, group))
    names = _run_weights_params(RUNS[0])
    return {name: (lambda wc, name=name: _run_weights_params(wc.run)[name]) for name in names}


def analysis_params(*keys):
    """The `analysis` settings a rule uses, one param per key; every analysis rule reads the
    analysis population, so its length and size are always among them."""
    used = ("population_length", "population_size", *keys)
    return setting_params({f"analysis.{key}": config["analysis"][key] for key in used})


#: When the figures that need more than the runs' own results are drawn (registry only_with):
#: across tasks with more than one task family, the sweep's with a sweep.
CONDITION_HOLDS = {
    "tasks": len(set(RUN_TASK_LABELS.values())) > 1,
    "sweep": bool(config.get("sweep")),
}


def figure_pngs(figure):
    """Every PNG of a registry figure (affine_icl/figures/registry.py): Figure 1 under
    figures/, a run's figures under runs/<run>/figures/ (its claims figures beside its claims),
    the figures across runs under aggregate/ (the atlas one per section of the paper)."""
    if figure.scope == "data":
        return [f"{RESULTS}/figures/{figure.stem}.png"]
    if figure.scope == "run":
        under = "" if figure.place == CLAIMS else "figures/"
        return [f"{run_dir(run)}/{under}{figure.stem}.png" for run in RUNS]
    stems = [figure.stem.format(section=section_slug(section)) for section in SECTIONS]
    return [f"{RESULTS}/aggregate/{stem}.png" for stem in dict.fromkeys(stems)]


def all_figures(wildcards):
    """Every figure of the registry the config draws, each run's claims table, export and
    attention views, and the claims across runs."""
    return (
        [
            png
            for figure in FIGURES.values()
            if CONDITION_HOLDS.get(figure.only_with, True)
            for png in figure_pngs(figure)
        ]
        + [f"{run_dir(run)}/claims.md" for run in RUNS]
        + [f"{RESULTS}/models/{run}/README.md" for run in RUNS]
        + [f"{run_dir(run)}/attention_views" for run in RUNS]
        + [f"{RESULTS}/aggregate/claims.md"]
        + ([f"{RESULTS}/aggregate/atlas.csv"] if CONDITION_HOLDS["sweep"] else [])
    )


def analysis_inputs(*families, scores=False):
    """Inputs of an analysis rule: folded weights, the population, cache files, head scores.

    The LayerNorm scales come with any cache family: every loaded cache carries them.
    """
    inputs = {
        "folded": f"{run_dir()}/model_folded.safetensors",
        "population": population,
    }
    if families:
        inputs["cache"] = [
            f"{run_dir()}/activations/{f}.parquet" for f in dict.fromkeys([*families, "ln_scale"])
        ]
    if scores:
        inputs["scores"] = measured("head_scores")
    return inputs


def figure_inputs(name, scores=False):
    """The inputs of the figure ``name``'s rule: :func:`analysis_inputs` with the cache families
    the registry says it reads and, for a figure of a table a measure rule writes (its entry's
    ``draws``), that table (``table``); such a figure that reads no cache needs the table alone."""
    figure = FIGURES[name]
    drawn = {"table": measured(figure.draws)} if figure.draws else {}
    if drawn and not figure.reads and not scores:
        return drawn
    return analysis_inputs(*figure.reads, scores=scores) | drawn


def measured(name, run="{run}"):
    """Where the table ``name`` of a run is (affine_icl/measure.py TABLES)."""
    return f"{run_dir(run)}/{MEASURED_TABLES[name].path}"


def measure_inputs(table):
    """A measure rule's inputs: folded weights, population, the cache families its table reads,
    the weights as trained where it reads them, and the tables it needs (by name)."""
    inputs = analysis_inputs(*table.families)
    if table.unfolded:
        inputs["unfolded"] = trained("weights")
    return inputs | {name: measured(name) for name in table.needs}


#: The report's categories, listed by name (hence the numbers): the claims first, then every
#: run's figures, then the figures across runs. Within a category Snakemake lists the
#: subcategories by name and the items by their labels (first label first), as text.
REPORT_CLAIMS, REPORT_FIGURES, REPORT_ACROSS = (
    "0. Claims",
    "1. Figures by run",
    "2. Figures across runs",
)


def figure_outputs(name, run="{run}", table=True):
    """A figure rule's PNG (in the report, with workflow/report/<name>.rst as caption) and the
    tidy table behind it; ``run=None`` for a figure of the data, not of a run (Figure 1);
    ``table=False`` for a figure drawn from a table a measure rule writes (measure.smk)."""
    where = f"{run_dir(run)}/figures" if run else f"{RESULTS}/figures"
    outputs = {
        "png": report(
            f"{where}/{name}.png",
            caption=f"../report/{name}.rst",
            category=REPORT_FIGURES,
            subcategory=f"run {run}" if run else "data (Figure 1)",
            labels={"in the paper": paper_place(name), "figure": name, "run": run or "all runs"},
        ),
    }
    return outputs | ({"table": f"{where}/{name}.csv"} if table else {})


def log_path(name, run="{run}"):
    """Where the job of ``name`` logs: logs/<name>/<run>.log, or logs/<name>.log (``run=None``)."""
    return f"{RESULTS}/logs/{name}/{run}.log" if run else f"{RESULTS}/logs/{name}.log"


def benchmark_path(name, run="{run}"):
    """Where the job of ``name`` records its wall time and peak memory (Snakemake benchmark,
    summarised against config resources by bench/rule_costs.py): benchmarks/<name>/<run>.tsv,
    or benchmarks/<name>.tsv (``run=None``)."""
    where = f"{RESULTS}/benchmarks/{name}"
    return f"{where}/{run}.tsv" if run else f"{where}.tsv"


#: Every rule's conda environment (--use-conda), relative to the rule files (workflow/rules/).
PIPELINE_ENV = "../../envs/pipeline.yaml"


def rule_benchmark(rule):
    """The benchmark of ``rule``: benchmarks/<rule>/<its wildcard>.tsv, benchmarks/<rule>.tsv
    without one (:func:`benchmark_path`)."""
    wildcards = "_".join(f"{{{name}}}" for name in sorted(rule.wildcard_names))
    return benchmark_path(rule.name, run=wildcards or None)


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
            category=REPORT_ACROSS,
            subcategory="all runs",
            labels={"in the paper": paper_place(name), "figure": name},
        ),
        "table": f"{RESULTS}/aggregate/{name}.csv",
    }


# --------------------------------------------------------------------------- sweeps (sweep.smk)

#: The swept settings (dotted keys), and each run's values of them (every setting, defaults
#: included: to_dict leaves out a default model.init).
SWEEP_AXES = list(config["sweep"]["grid"]) if config.get("sweep") else []
SWEEP_VALUES = {
    run: {key: flat_settings(asdict(run_config(config, run)))[key] for key in SWEEP_AXES}
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
