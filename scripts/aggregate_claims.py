"""Rule aggregate_claims: each claim over all runs, with "holds in k of n runs"."""

import pandas as pd

from affine_icl.aggregate import aggregate_claims
from affine_icl.claims import to_markdown
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    table = aggregate_claims(
        {run: pd.read_csv(path) for run, path in zip(sm.params.runs, sm.input.claims, strict=True)}
    )
    table.to_csv(sm.output.csv, index=False)
    shown = [
        "claim_id",
        "section",
        "claim",
        "paper",
        "mean",
        "min",
        "max",
        "summary",
        "measured_as",
    ]
    with open(sm.output.md, "w") as fh:
        fh.write(
            f"# Claims of Bhargav & Gu (2024) across {len(sm.params.runs)} run(s): "
            f"{', '.join(sm.params.runs)}\n\n" + to_markdown(table[shown])
        )
