"""Rule aggregate_claims: each claim over all runs, with "holds in k of n runs"."""

import pandas as pd

from affine_icl.aggregate import aggregate_claims, aggregate_html
from affine_icl.config import run_config
from affine_icl.protocol import protocol_note
from affine_icl.render import to_markdown
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    per_run = {
        run: pd.read_csv(path) for run, path in zip(sm.params.runs, sm.input.claims, strict=True)
    }
    table = aggregate_claims(per_run)
    table.to_csv(sm.output.csv, index=False)
    shown = [
        "claim_id",
        "section",
        "claim",
        "paper",
        "mean",
        "sd",
        "min",
        "max",
        "summary",
        "margin",
        "chance_note",
        "other_reading",
        "measured_as",
    ]
    title = (
        f"Claims of Bhargav & Gu (2024) across {len(sm.params.runs)} run(s): "
        f"{', '.join(sm.params.runs)}"
    )
    with open(sm.output.md, "w") as fh:
        fh.write(f"# {title}\n\n" + to_markdown(table[[c for c in shown if c in table]]))
    runs = [protocol_note(run, run_config(sm.config, run)) for run in per_run]
    with open(sm.output.html, "w") as fh:
        fh.write(aggregate_html(table, per_run, title, runs))
