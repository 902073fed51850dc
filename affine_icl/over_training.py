"""The claims measured at every weights snapshot of a run: when each part of the mechanism forms.

A run keeps its weights every ``train.snapshot_every`` steps (:mod:`affine_icl.train`). For each
snapshot before the final step, :func:`snapshot_tables` computes, in one process and from one
activation pass over the analysis population (:func:`~affine_icl.activations.activation_cache`,
no files), every table the claims rule reads, through the function the measure rules write them
with (:func:`affine_icl.measure.run_tables`); rule ``measure_over_training`` writes them, one CSV
per table with a ``step`` column. :func:`claims_over_training` judges each step's tables by the
same criteria as the claims (:func:`~affine_icl.claims.table.claims_table`), and the final step
on the tables the claims rule reads, so that step is ``claims.csv``'s verdicts by construction
and is not measured twice. Measuring and judging are two rules, so a changed criterion judges
again in seconds without measuring again. The sensitivity grid is not recomputed per snapshot:
it is a statement about the final model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .activations import activation_cache
from .analysis.chance import matrix_score_nulls
from .analysis.population import Population
from .claims.table import claims_table
from .claims.verdicts import NOT_APPLICABLE
from .config import RunAnalysis
from .measure import TABLES, RunInputs, run_tables
from .model import fold_weights, load_model, read_metadata

#: The columns of ``claims_over_training.csv``.
COLUMNS = ["step", "claim_id", "measured", "chance", "effect", "verdict"]


def snapshot_tables(
    weights: Mapping[int, Path | str],
    pop: Population,
    settings: RunAnalysis,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Every table of :data:`~affine_icl.measure.TABLES` measured on each weights file of
    ``weights`` (trained weights as saved, by step) over ``pop`` (the analysis population) with
    ``settings``: by name, each table of every step in one frame with a leading ``step``
    column, steps in increasing order. Each step's tables come from one activation pass in
    memory; the matrix-score nulls of all steps are computed first, at once (their shuffles
    sorted once for all)."""
    steps = sorted(weights)
    a = settings.analysis
    folded = [fold_weights(load_model(weights[step])) for step in steps]
    nulls = matrix_score_nulls(folded, a.null_draws, a.seed, progress)
    del folded  # one snapshot's model and activations in memory at a time from here
    by_table: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for step, step_nulls in zip(
        tqdm(steps, desc="tables of each snapshot", disable=not progress), nulls, strict=True
    ):
        unfolded = load_model(weights[step])
        model = fold_weights(unfolded)
        cache = activation_cache(model, pop.inputs)
        run = RunInputs(model, pop, cache, settings, unfolded, step_nulls)
        for name, table in run_tables(run).items():
            by_table[name].append(table.assign(step=step))
    return {
        name: pd.concat(parts, ignore_index=True)[["step", *parts[0].columns[:-1]]]
        if parts
        else pd.DataFrame(columns=["step", *TABLES[name].columns])
        for name, parts in by_table.items()
    }


def tables_at(over_training: Mapping[str, pd.DataFrame], step: int) -> dict[str, pd.DataFrame]:
    """The tables of one step of :func:`snapshot_tables` (as written, or read back), without
    the ``step`` column."""
    return {
        name: table[table["step"] == step].drop(columns="step").reset_index(drop=True)
        for name, table in over_training.items()
    }


def weights_by_step(snapshots: Path | str, final: Path | str) -> dict[int, Path]:
    """The weights to measure, by step: every snapshot in the directory ``snapshots`` and the
    final weights ``final``, each at the step its metadata records (not its file name; the
    final weights replace a snapshot of their step: the same weights)."""
    found = {
        int(read_metadata(p)["step"]): Path(p) for p in Path(snapshots).glob("step-*.safetensors")
    }
    found[int(read_metadata(final)["step"])] = Path(final)
    return dict(sorted(found.items()))


def no_snapshots_reason(steps: int, snapshot_every: int) -> str:
    """Why a run of ``steps`` steps has no weights snapshot before its final step."""
    if not snapshot_every:
        return "train.snapshot_every is 0"
    if steps <= snapshot_every:
        return (
            f"its {steps:,} steps end before the first snapshot "
            f"(train.snapshot_every {snapshot_every:,})"
        )
    return "its checkpoints were written before snapshots were kept"


def claims_over_training(
    over_training: Mapping[str, pd.DataFrame],
    final: Mapping[str, pd.DataFrame],
    final_step: int,
    criteria: Mapping[str, Mapping],
    settings: RunAnalysis,
) -> pd.DataFrame:
    """Every claim judged at each step of ``over_training`` (:func:`snapshot_tables`, the
    tables of the weights snapshots) and at ``final_step`` on ``final`` (the tables the claims
    rule reads, ``train_log`` included), by ``criteria``: one row per (step, claim) with
    :data:`COLUMNS`, steps in increasing order. At step ``s`` the final-MSE claim reads the
    training log up to ``s``; a claim that does not apply to the run's task has no rows. A
    snapshot at ``final_step`` or later is left out: the final weights are that step."""
    steps = sorted({int(s) for table in over_training.values() for s in table["step"]})
    rows = []
    for step in [s for s in steps if s < final_step] + [final_step]:
        tables = final if step == final_step else tables_at(over_training, step)
        log = final["train_log"]
        tables = {**tables, "train_log": log[log["step"] <= step]}
        table = claims_table(tables, criteria, settings)
        table = table[table["verdict"] != NOT_APPLICABLE]  # nothing to follow over training
        rows.append(table.assign(step=step)[COLUMNS])
    return pd.concat(rows, ignore_index=True)
