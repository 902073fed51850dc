"""What each rule costs, measured, beside what it asks for.

Every rule records a Snakemake benchmark, ``<results>/benchmarks/<rule>/<job>.tsv`` (one per
run or batch group) or ``<results>/benchmarks/<rule>.tsv`` (across-runs rules): its wall time
``s`` and peak resident memory ``max_rss`` (MB; "NA" for a job too short to sample).
:func:`rule_costs` sets them against the request of ``config["resources"]``
(:func:`affine_icl.rule_settings.rule_resources`), so a cluster's sizes are set from measurements:

    python bench/rule_costs.py --configfile configs/sweep_demo.yaml   # results/sweep_demo/
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .rule_settings import rule_resources


def read_benchmarks(directory: str | Path) -> pd.DataFrame:
    """One row per benchmarked job under ``directory``: rule, job, seconds, peak RSS (MB).
    A file of repeated measurements (``benchmark: repeat()``) gives one row per repeat."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory} does not exist: run the workflow first (every rule writes its "
            "benchmark there), or pass --results for a config with its own results directory"
        )
    rows = []
    for path in sorted(directory.rglob("*.tsv")):
        nested = path.parent != directory
        rule, job = (path.parent.name, path.stem) if nested else (path.stem, "")
        table = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
        for _, measured in table.iterrows():
            rows.append(
                {"rule": rule, "job": job, "s": measured["s"], "max_rss_mb": measured["max_rss"]}
            )
    return pd.DataFrame(rows, columns=["rule", "job", "s", "max_rss_mb"])


def rule_costs(benchmarks: pd.DataFrame, config: Mapping[str, Any]) -> pd.DataFrame:
    """Per rule: how many jobs, their median and longest wall time, their largest peak memory,
    the request (threads, mem_mb, runtime in minutes) and whether every job stayed within it.

    ``fits`` is False where a job's peak memory exceeded ``mem_mb`` or its wall time
    ``runtime``; jobs without a memory sample count as within it.
    """
    rows = []
    for rule, jobs in benchmarks.groupby("rule", sort=True):
        asked = rule_resources(config, rule)
        peak = jobs["max_rss_mb"].max()
        longest = jobs["s"].max()
        rows.append(
            {
                "rule": rule,
                "jobs": len(jobs),
                "median_s": jobs["s"].median(),
                "max_s": longest,
                "max_rss_mb": peak,
                "threads": asked["threads"],
                "mem_mb": asked["mem_mb"],
                "runtime_min": asked["runtime"],
                "fits": bool(
                    (pd.isna(peak) or peak <= asked["mem_mb"]) and longest <= 60 * asked["runtime"]
                ),
            }
        )
    return pd.DataFrame(rows)
