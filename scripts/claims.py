"""Rule claims: the paper's quantitative claims with this run's measurements and verdicts."""

import pandas as pd

from affine_icl.claims import claims_table, protocol_note, readable, to_html, to_markdown
from affine_icl.config import run_config
from affine_icl.data import collapse_warning
from affine_icl.rules import claim_inputs, rule_log
from affine_icl.sensitivity import robustness

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    tables, criteria, params = claim_inputs(sm)
    table = claims_table(tables, criteria, params, robustness(pd.read_csv(sm.input.sensitivity)))
    table.to_csv(sm.output.csv, index=False)
    counts = table["verdict"].value_counts().to_dict()
    fragile = int(table["robustness"].str.startswith("fragile").sum())
    header = (
        f"# Claims of Bhargav & Gu (2024) on run {sm.wildcards.run}\n\n"
        + ", ".join(f"{v}: {n}" for v, n in counts.items())
        + f"; fragile (another threshold or reading in claims_sensitivity.png gives another "
        f"verdict): {fragile}\n\n"
    )
    collapse = collapse_warning(tables["train_log"].to_dict("records"))
    if collapse:
        header += f"**Warning: {collapse}.**\n\n"
    with open(sm.output.md, "w") as fh:
        fh.write(header + to_markdown(readable(table)))
    ran = protocol_note(sm.wildcards.run, run_config(sm.config, sm.wildcards.run))
    notes = [f"Warning: {collapse}."] if collapse else []
    with open(sm.output.html, "w") as fh:
        fh.write(
            to_html(table, f"Claims of Bhargav & Gu (2024) on run {sm.wildcards.run}", [ran], notes)
        )
