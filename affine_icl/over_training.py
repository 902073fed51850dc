"""The claims measured at every weights snapshot of a run: when each part of the mechanism forms.

A run keeps its weights every ``train.snapshot_every`` steps (:mod:`affine_icl.train`). For each
snapshot and the final weights, :func:`claim_tables` computes, in one process and from one
activation pass over the analysis population (:func:`~affine_icl.activations.activation_cache`,
no files), every table the claims rule reads, through the function the rules write them with
(:func:`affine_icl.measure.run_tables`); :func:`claims_over_training` judges them by the same
criteria (:func:`~affine_icl.claims.table.claims_table`). The sensitivity grid is not recomputed per snapshot:
it is a statement about the final model.

At the final step the rule judges the tables the claims rule reads (``final``), so that step is
``claims.csv``'s verdicts by construction and is not measured twice; measured here instead
(no ``final``), the same functions, population and seeds give the same numbers to float
precision (the activations agree with the Parquet cache).
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
from .measure import RunInputs, run_tables
from .model import VectorTransformer, fold_weights, load_model, read_metadata

#: The columns of ``claims_over_training.csv``.
COLUMNS = ["step", "claim_id", "measured", "chance", "effect", "verdict"]


def claim_tables(
    unfolded: VectorTransformer,
    pop: Population,
    train_log: pd.DataFrame,
    settings: RunAnalysis,
    nulls: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The tables :func:`~affine_icl.claims.table.claims_table` reads, by name, for one model:
    ``unfolded`` (trained weights as saved), ``pop`` (the analysis population), ``train_log``
    (the log up to this model's step) and ``settings``; every table of
    :data:`~affine_icl.measure.TABLES` from one activation pass in memory. ``nulls``: the
    folded model's matrix-score nulls, if already computed (:class:`~affine_icl.measure.RunInputs`)."""
    model = fold_weights(unfolded)
    cache = activation_cache(model, pop.inputs, settings.analysis.cache_batch_size)
    run = RunInputs(model, pop, cache, settings, unfolded, nulls)
    return {"train_log": train_log, **run_tables(run)}


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
    weights: Mapping[int, Path | str],
    pop: Population,
    train_log: pd.DataFrame,
    criteria: Mapping[str, Mapping],
    settings: RunAnalysis,
    final: Mapping[str, pd.DataFrame] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Every claim measured and judged on each weights file in ``weights`` (by step): one row
    per (step, claim) with :data:`COLUMNS`, steps in increasing order. At step ``s`` the
    final-MSE claim reads the training log up to ``s``; a claim that does not apply to the
    run's task has no rows. ``final``: the last step's tables as already measured (the
    claims rule's, by name), judged instead of measured again."""
    rows = []
    last = max(weights)
    measured = [step for step in sorted(weights) if not (step == last and final is not None)]
    # the matrix-score nulls of every model at once: their shuffles are sorted once for all
    unfolded = {step: load_model(weights[step]) for step in measured}
    a = settings.analysis
    nulls = dict(
        zip(
            measured,
            matrix_score_nulls(
                [fold_weights(unfolded[s]) for s in measured], a.null_draws, a.seed, progress
            ),
            strict=True,
        )
    )
    for step in tqdm(sorted(weights), desc="claims over training", disable=not progress):
        log = train_log[train_log["step"] <= step]
        if step in unfolded:
            tables = claim_tables(unfolded.pop(step), pop, log, settings, nulls.pop(step))
        else:
            tables = {**final, "train_log": log}
        table = claims_table(tables, criteria, settings)
        table = table[table["verdict"] != NOT_APPLICABLE]  # nothing to follow over training
        rows.append(table.assign(step=step)[COLUMNS])
    return pd.concat(rows, ignore_index=True)
