"""Write the README's "Results" section from a finished run, so it is generated, never typed.

    python -m affine_icl.readme [--results results] [--readme README.md] --machine "2-core CPU"
    python -m affine_icl.readme --figures   # the figure table only, from the figure registry

reads ``results/aggregate/claims.csv`` (and ``claims_over_training.csv`` where it exists) and
each run's training log, and replaces
the text between ``<!-- results:start -->`` and ``<!-- results:end -->`` in the README.
``--runs`` aggregates the named runs' own ``claims.csv`` instead (one setting of a sweep, such
as the ``model.init`` study's five seeds of one init), as the ``aggregate_claims`` rule does.
The table of figures, between ``<!-- figures:start -->`` and ``<!-- figures:end -->``, comes
from :data:`affine_icl.figures.registry.FIGURES` (``--figures`` rewrites just that).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from .aggregate import aggregate_claims, runs_table, verdict_settled_since
from .config import UNHASHED_INIT
from .figures.registry import CLAIMS, FIGURES
from .margins import ROBUST_RULE, SEARCH, TOLERANCE
from .render import to_markdown

START, END = "<!-- results:start -->", "<!-- results:end -->"
FIGURES_START, FIGURES_END = "<!-- figures:start -->", "<!-- figures:end -->"

#: Where a figure's PNG is, by its scope, and what a conditional figure waits for.
_WHERE = {"data": "results/figures/", "run": "figures/", "runs": "results/aggregate/"}
_ONLY_WITH = {"tasks": " (runs of more than one task family)", "sweep": " (with a sweep)"}


def provenance(results: Path, runs: list[str]) -> pd.DataFrame:
    """Per run: its initialisation (``model.init``), optimizer steps, final held-out MSE and
    training time in minutes.

    The time is the training log's ``elapsed_s``, the seconds spent training, continued across
    a resumption; not the job's benchmark, which a rerun that resumes at the last step (to
    write an output added later, say) overwrites with its few seconds.
    """
    rows = []
    for run in runs:
        path = results / "runs" / run / "train_log.parquet"
        log = pd.read_parquet(path)
        recorded = (pq.read_schema(path).metadata or {}).get(b"run_config")
        model = json.loads(recorded).get("model", {}) if recorded else {}
        rows.append(
            {
                "run": run,
                # the run's initialisation (README "Initialisation"); absent: the init of
                # every run before the setting existed, which stays out of the hashes
                "init": model.get("init", UNHASHED_INIT),
                "steps": int(log["step"].iloc[-1]),
                "final held-out MSE": float(log["heldout_mse"].dropna().iloc[-1]),
                "training time (min)": float(log["elapsed_s"].iloc[-1]) / 60,
            }
        )
    return pd.DataFrame(rows)


#: How to read the margin, chance and other-reading columns (README Results).
MARGIN_LEGEND = (
    "'Literal reading': the paper's procedure as written, judged by `config.yaml`'s criteria. "
    "'Margin': over which strictness factors the verdict stays the same in every run with that "
    "verdict (x2: a definition twice as far from chance; x0.5: half as far; found by bisection "
    f"to {TOLERANCE:g} within x{SEARCH[0]:g} to x{SEARCH[1]:g}, `affine_icl/margins.py`); "
    f"robust: {ROBUST_RULE}. 'Chance passes?': a measurement at the claim's chance level would be reproduced "
    "too, so the verdict alone cannot tell the model from chance (by design for a claim that "
    "an effect is absent). 'Another reading': the reading of the paper's words "
    "(each claim's `alternatives`, `affine_icl/claims/`) that gets closer to the paper's result than "
    "the literal one, with its chance level: where it exists, the literal method fails and "
    "that reading shows whether the model does what the paper says by another measure."
)


def results_block(
    claims: pd.DataFrame,
    runs: pd.DataFrame,
    machine: str,
    note: str = "",
    settled: pd.DataFrame | None = None,
    source: str = "`results/aggregate/claims.csv`",
) -> str:
    """The Markdown of the Results section (without the markers): ``runs`` is the runs'
    provenance (:func:`provenance`), ``claims`` their aggregate; ``settled``
    (:func:`~affine_icl.aggregate.verdict_settled_since`) adds when each verdict stopped
    changing during training; ``source`` names where the claims were read."""
    columns = ["claim_id", "section", "paper", "mean", "sd", "min", "max", "chance", "summary"]
    columns += [c for c in ("margin", "chance_note", "other_reading") if c in claims]
    columns = [c for c in columns if c in claims]
    if settled is not None:
        since = settled.set_index("claim_id")["settled_since"]
        claims = claims.assign(**{"verdict settled since step": claims["claim_id"].map(since)})
        columns.append("verdict settled since step")
    shown = claims[[*columns, "measured_as"]].copy()
    # an empty CSV cell reads back as NaN (a float column when every cell is empty)
    for text in ("measured_as", "chance_note", "other_reading"):
        if text in shown:
            shown[text] = shown[text].astype(object).where(shown[text].notna(), "")
    shown = shown.rename(
        columns={
            "summary": "literal reading: holds in",
            "margin": "margin (strictness factor)",
            "chance_note": "chance passes?",
            "other_reading": "another reading the paper's words allow",
        }
    )
    counts = claims["summary"].value_counts().to_dict()
    lines = [
        f"Generated by `python -m affine_icl.readme` from {source} "
        f"({len(runs)} run(s), machine: {machine}).",
        "",
        to_markdown(runs).rstrip(),
        "",
        "Claim verdicts: "
        + "; ".join(f"{n} claim(s) {s}" for s, n in sorted(counts.items()))
        + ".",
    ]
    if settled is not None:
        n = int(settled["runs"].max())
        lines += [
            "",
            f"'Verdict settled since step': the first weights snapshot from which each of the "
            f"{n} run(s) with snapshots gives its final verdict at every later step "
            f"(`results/aggregate/claims_over_training.png`); "
            f"{int((settled['settled_since'] == settled['last_step']).sum())} verdict(s) "
            "changed at the last step measured, so another training length could change them.",
        ]
    if "margin" in claims:
        lines += ["", MARGIN_LEGEND]
    if note:
        lines += ["", note]
    lines += ["", to_markdown(shown).rstrip()]
    return "\n".join(lines)


def figures_block() -> str:
    """The Markdown of the README's table of figures: one row per figure of the registry, its
    place in the paper, its PNG (a run's under ``results/runs/<run>/``) and what it shows."""
    lines = [
        "Generated by `python -m affine_icl.readme --figures` from "
        "`affine_icl/figures/registry.py`.",
        "",
        "| paper | file (a run's under `results/runs/seed0/`) | what it shows |",
        "| --- | --- | --- |",
    ]
    for figure in FIGURES.values():
        where = "" if figure.scope == "run" and figure.place == CLAIMS else _WHERE[figure.scope]
        shows = figure.shows + _ONLY_WITH.get(figure.only_with, "")
        lines.append(f"| {figure.place} | `{where}{figure.stem}.png` | {shows} |")
    return "\n".join(lines)


def replace_block(text: str, block: str, start: str = START, end: str = END) -> str:
    """Replace what lies between the markers (which must both be present, once)."""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"the README must contain {start} ... {end} exactly once")
    return pattern.sub(lambda _: f"{start}\n{block}\n{end}", text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument(
        "--machine", help="where the runs were trained (required but with --figures)"
    )
    parser.add_argument(
        "--figures", action="store_true", help="rewrite only the table of figures (no results)"
    )
    parser.add_argument("--note", default="", help="a sentence to add, e.g. reduced steps")
    parser.add_argument(
        "--runs",
        nargs="+",
        help="aggregate these runs' RESULTS/runs/RUN/claims.csv (and claims_over_training.csv "
        "where a run has one) instead of RESULTS/aggregate/",
    )
    args = parser.parse_args(argv)
    if args.figures:
        text = replace_block(args.readme.read_text(), figures_block(), FIGURES_START, FIGURES_END)
        args.readme.write_text(text)
        return
    if not args.machine:
        parser.error("--machine is required (but with --figures)")
    if args.runs:
        runs = args.runs
        run_dirs = [args.results / "runs" / run for run in runs]
        claims = aggregate_claims(
            {run: pd.read_csv(d / "claims.csv") for run, d in zip(runs, run_dirs, strict=True)}
        )
        tables = {r: d / "claims_over_training.csv" for r, d in zip(runs, run_dirs, strict=True)}
        tables = {run: path for run, path in tables.items() if path.is_file()}
        over_training = runs_table(list(tables), list(tables.values())) if tables else None
        source = f"the claims of {', '.join(f'`{r}`' for r in runs)} in `{args.results}/runs/`"
    else:
        claims = pd.read_csv(args.results / "aggregate" / "claims.csv")
        runs = [c.removeprefix("value ") for c in claims.columns if c.startswith("value ")]
        path = args.results / "aggregate" / "claims_over_training.csv"
        over_training = pd.read_csv(path) if path.is_file() else None
        source = f"`{args.results}/aggregate/claims.csv`"
    settled = verdict_settled_since(over_training) if over_training is not None else None
    block = results_block(
        claims, provenance(args.results, runs), args.machine, args.note, settled, source
    )
    args.readme.write_text(replace_block(args.readme.read_text(), block))


if __name__ == "__main__":
    main()
