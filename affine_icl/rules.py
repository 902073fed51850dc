"""Glue for the thin scripts that Snakemake runs: logging, loading a rule's inputs, writing outputs."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Stopped

if TYPE_CHECKING:
    from .config import RunAnalysis


@contextlib.contextmanager
def rule_log(path: str | Path) -> Iterator[logging.Logger]:
    """Send stdout, stderr (progress bars included) and a logger to the rule's log file.

    Exceptions are logged with their traceback and re-raised, so the job fails visibly and
    Snakemake prints the log's path; a :class:`~affine_icl.errors.Stopped` (training stopped by
    a signal, its checkpoint written) is one line in the log and the terminal, and the job
    exits with status 1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "w", buffering=1) as fh,
        contextlib.redirect_stdout(fh),
        contextlib.redirect_stderr(fh),
    ):
        logger = logging.getLogger("affine_icl")
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield logger
        except Stopped as exc:  # a requested stop: one line, no traceback, a failed job
            logger.warning("%s", exc)
            print(f"stopped: {exc}", file=sys.__stderr__, flush=True)
            raise SystemExit(1) from None
        except Exception as exc:
            logger.exception("%s: %s", type(exc).__name__, exc)
            print(f"ERROR: {type(exc).__name__}: {exc}", file=sys.__stderr__)
            raise
        finally:
            logger.removeHandler(handler)


@dataclass
class AnalysisRun:
    """What an analysis rule works on: the folded model, the analysis population, its cache,
    and its ``analysis.*`` params as an :class:`~affine_icl.config.AnalysisConfig` (a setting
    the rule does not take as a param has its default)."""

    model: object
    pop: object
    cache: object | None
    settings: object


def analysis_run(sm, layers=None, with_cache: bool = True) -> AnalysisRun:
    """Load the inputs of an analysis rule from a Snakemake ``snakemake`` object.

    Expects ``input.folded`` (folded weights), ``input.population`` (evaluation population),
    ``input.cache`` (activation files, when ``with_cache``) and the ``analysis.*`` params
    (:func:`affine_icl.rule_settings.setting_params`).
    ``layers`` limits which layers' activations are read (those the model lacks are left out);
    only the families the rule declares as inputs are read. The analysis runs on the rule's
    threads (a Slurm job's CPUs, not the node's), the same numbers on any count
    (:func:`~affine_icl.batches.use_threads`).
    """
    from .activations import load_activation_cache
    from .activations import read_metadata as cache_metadata
    from .analysis.population import analysis_population
    from .batches import use_threads
    from .data import read_parquet
    from .model import load_model, read_metadata

    use_threads(sm.threads)  # the rule's threads (config resources), not every core
    check_provenance(sm)
    settings = analysis_settings(sm)
    model = load_model(sm.input.folded)
    pop = analysis_population(
        read_parquet(sm.input.population, "evaluation population"),
        settings.population_length,
        settings.population_size,
    )
    cache = None
    if with_cache:
        cache_dir = Path(sm.input.cache[0]).parent
        check_same_config(
            sm.input.cache[0], cache_metadata(sm.input.cache[0]), read_metadata(sm.input.folded)
        )
        families = [Path(p).stem for p in sm.input.cache]
        if layers is not None:  # a table of layer 2 on a 2-layer model reads no layer
            layers = [layer for layer in layers if layer < model.cfg.n_layers]
        cache = load_activation_cache(cache_dir, model, layers=layers, families=families)
        ids = cache["ln_final.hook_scale"].shape[0]
        if ids != len(pop):
            raise ValueError(
                f"activation cache {cache_dir} holds {ids} sequences, the analysis "
                f"population {len(pop)}; rerun the cache_activations rule"
            )
    return AnalysisRun(model, pop, cache, settings)


def layer_missing(sm, layer: int, figure: str) -> bool:
    """For a figure of ``layer`` on a run whose model has no such layer (a 2-layer model of a
    sweep): write its outputs as "not applicable" (a table saying why, a figure with the reason
    as its only content) and return True; the script then stops."""
    import pandas as pd

    from .config import run_config
    from .figures.style import plot_not_applicable, save_figure

    n_layers = run_config(sm.config, sm.wildcards.run).model.n_layers
    if layer < n_layers:
        return False
    reason = f"not applicable: run {sm.wildcards.run} has {n_layers} layers, so no layer {layer}"
    pd.DataFrame({"not_applicable": [reason]}).to_csv(sm.output.table, index=False)
    save_figure(plot_not_applicable(f"{figure}: {reason}"), sm.output.png)
    return True


class StaleInput(ValueError):
    """A rule's input was made under other settings than the run's config now has."""


#: Inputs that hold a run's trained weights or training log, checked by ``config_hash``.
TRAINED_INPUTS = ("weights", "unfolded", "folded", "log", "train_log")


def _file_metadata(path: str) -> dict[str, str]:
    """The string metadata of a safetensors or Parquet file."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return {k.decode(): v.decode() for k, v in meta.items()}
    from .model import read_metadata

    return read_metadata(path)


def check_provenance(sm) -> None:
    """Refuse a run's inputs that were made under other settings than the run's config now
    has, in one line naming the file, both hashes and the rule to rerun.

    Snakemake reruns a rule when its params change, but not when it has no record of them
    (``results/`` copied without ``.snakemake/``, ``--touch``): the files' own metadata is the
    check that holds then. Trained weights and logs (inputs named as in
    :data:`TRAINED_INPUTS`) must carry the run's ``config_hash``; weights snapshots
    (``snapshots``) its ``trajectory_hash`` and a ``step`` no later than ``train.steps`` (by their
    metadata, not their file names); the evaluation population (``population``) the run's data
    settings. A rule without a ``run`` wildcard checks nothing.
    """
    from .config import run_config

    run = getattr(sm.wildcards, "run", None)
    if run is None:
        return
    cfg = run_config(sm.config, run)
    for name in TRAINED_INPUTS:
        if name in sm.input.keys():
            check_trained(sm.input[name], cfg, run)
    if "snapshots" in sm.input.keys():
        for path in sorted(Path(sm.input.snapshots).glob("step-*.safetensors")):
            check_snapshot(path, cfg)
    if "population" in sm.input.keys():
        have = _file_metadata(sm.input.population).get("data_config")
        if have != repr(cfg.data):
            raise StaleInput(
                f"{sm.input.population} was drawn with other data settings than run {run}'s "
                f"now ({have} vs {cfg.data!r}); redraw it: snakemake --forcerun "
                "generate_data generate_task_data"
            )


def check_trained(path, cfg, run: str) -> None:
    """Refuse a file made from run ``run``'s trained model (weights, folded weights, training
    log) whose ``config_hash`` is not that of ``cfg``, the run's config now."""
    have = _file_metadata(str(path)).get("config_hash")
    if have != cfg.hash():
        raise StaleInput(
            f"{path} was made from a model trained under config {have}, but run {run}'s config "
            f"hashes to {cfg.hash()} now (a setting changed that Snakemake has no record of); "
            f"retrain: snakemake --forcerun train -- {path}"
        )


def check_snapshot(path, cfg) -> int:
    """The step of the weights snapshot at ``path``, from its metadata, after checking that it
    belongs to ``cfg``'s training trajectory and lies within ``train.steps``."""
    meta = _file_metadata(str(path))
    have = meta.get("trajectory_hash")
    if have is None and meta.get("config_hash") == cfg.hash():
        have = cfg.trajectory_hash()  # written before snapshots recorded their trajectory
    step = int(meta.get("step", -1))
    if have != cfg.trajectory_hash() or not 0 < step <= cfg.train.steps:
        raise StaleInput(
            f"{path} is a snapshot of training {have} at step {step}, not one of this run's "
            f"(training {cfg.trajectory_hash()}, steps 1-{cfg.train.steps}); retrain: "
            f"snakemake --forcerun train -- {Path(path).parent}"
        )
    return step


def trained_summary(weights) -> dict | None:
    """What the weights file ``weights`` was trained with, from its metadata: ``steps`` and the
    ``differences`` from the paper's protocol (:func:`affine_icl.claims.protocol_differences`);
    None when there is no such file (not trained yet) or it records no run config."""
    import json

    from .config import RunConfig
    from .protocol import protocol_differences

    path = Path(weights)
    if not path.is_file():
        return None
    meta = _file_metadata(str(path))
    if "run_config" not in meta or "step" not in meta:
        return None
    cfg = RunConfig.from_dict(json.loads(meta["run_config"]))
    return {"steps": int(meta["step"]), "differences": protocol_differences(cfg)}


def report_runs(config: dict, results: str) -> dict:
    """What the report's front page says of each run of ``config``: ``steps``, ``differences``
    from the paper's protocol (:func:`affine_icl.claims.protocol_differences`) and ``trained``.
    A trained run is described by its weights' metadata (:func:`trained_summary`: what was
    trained, whatever the config says now), one not trained yet by the config."""
    from .config import run_config
    from .protocol import protocol_differences

    out = {}
    for entry in config["runs"]:
        name = entry["name"]
        done = trained_summary(f"{results}/runs/{name}/model.safetensors")
        if done is not None:
            out[name] = {**done, "trained": True}
        else:
            cfg = run_config(config, name)
            out[name] = {
                "steps": cfg.train.steps,
                "differences": protocol_differences(cfg),
                "trained": False,
            }
    return out


def protocol_summary() -> dict:
    """The paper's protocol in the words of the report's front page (RunConfig's defaults, as
    in config.yaml): layers, width, heads, steps, batch size and learning rate."""
    from .config import RunConfig

    protocol = RunConfig()
    return {
        "n_layers": protocol.model.n_layers,
        "d_model": protocol.model.d_model,
        "n_heads": protocol.model.n_heads,
        "steps": protocol.train.steps,
        "batch_size": protocol.train.batch_size,
        "lr": protocol.train.lr,
    }


def check_same_config(path, found: dict, expected: dict) -> None:
    """Refuse a file whose ``config_hash`` metadata differs from the model's."""
    have, want = found.get("config_hash"), expected.get("config_hash")
    if have != want:
        raise ValueError(
            f"{path} was written by config {have}, but the model is config {want}; "
            "rerun the rule that writes it (snakemake --forcerun cache_activations)"
        )


def claim_inputs(sm) -> tuple[dict, dict, RunAnalysis]:
    """The tables a claims rule reads (its inputs named ``train_log`` or after a table of
    :data:`~affine_icl.measure.TABLES`, by that name), the criteria (``claims.*`` params) and
    what the claims are measured with (:func:`claim_params`)."""
    import pandas as pd

    from .rule_settings import settings_from_params

    check_provenance(sm)
    tables = {"train_log": pd.read_parquet(sm.input.train_log), **read_tables(sm)}
    return tables, settings_from_params(sm.params, "claims"), claim_params(sm)


def read_tables(sm, prefix: str = "", rule: str | None = None) -> dict:
    """The tables of :data:`~affine_icl.measure.TABLES` among a rule's inputs, by table name:
    those named ``prefix`` + a table's name, each checked for its declared columns (an old
    one is refused, naming ``rule`` to rebuild it; default each table's own measuring rule)."""
    import pandas as pd

    from .measure import TABLES, check_columns

    tables = {}
    for name, path in sm.input.items():
        table_name = name.removeprefix(prefix)
        if name.startswith(prefix) and table_name in TABLES:
            tables[table_name] = table = pd.read_csv(path)
            check_columns(table_name, table, path, rule)
    return tables


def analysis_settings(sm):
    """A rule's ``analysis.*`` params as an :class:`~affine_icl.config.AnalysisConfig` (a
    setting the rule does not take as a param has its default)."""
    from .config import analysis_config
    from .rule_settings import settings_from_params

    return analysis_config(settings_from_params(sm.params, "analysis"))


def claim_params(sm) -> RunAnalysis:
    """What the claims of one run are measured with: its ``analysis.*`` params, its
    ``loss_from_index`` and its data settings, which name its task family."""
    from .config import RunAnalysis, run_config

    return RunAnalysis(
        analysis_settings(sm),
        sm.params.loss_from,
        run_config(sm.config, sm.wildcards.run).data,
    )


def write_outputs(sm, table, fig=None) -> None:
    """Write a rule's table (``output.table``, CSV; None for a figure of a table a measure
    rule wrote, :mod:`affine_icl.measure`) and figure (``output.png``)."""
    from .figures.style import save_figure

    if table is not None:
        table.to_csv(sm.output.table, index=False)
    if fig is not None:
        save_figure(fig, sm.output.png)
