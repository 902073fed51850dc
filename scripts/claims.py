"""Rule claims: the paper's quantitative claims with this run's measurements and verdicts."""

import pandas as pd

from affine_icl.claims import claims_table, protocol_note, to_html, to_markdown
from affine_icl.config import run_config, settings_from_params
from affine_icl.data import collapse_warning
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    tables = {
        name: (pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path))
        for name, path in sm.input.items()
    }
    params = {**settings_from_params(sm.params, "analysis"), "loss_from_index": sm.params.loss_from}
    table = claims_table(tables, settings_from_params(sm.params, "claims"), params)
    table.to_csv(sm.output.csv, index=False)
    counts = table["verdict"].value_counts().to_dict()
    header = (
        f"# Claims of Bhargav & Gu (2024) on run {sm.wildcards.run}\n\n"
        + ", ".join(f"{v}: {n}" for v, n in counts.items())
        + "\n\n"
    )
    collapse = collapse_warning(tables["train_log"].to_dict("records"))
    if collapse:
        header += f"**Warning: {collapse}.**\n\n"
    with open(sm.output.md, "w") as fh:
        fh.write(header + to_markdown(table))
    ran = protocol_note(sm.wildcards.run, run_config(sm.config, sm.wildcards.run))
    notes = [f"Warning: {collapse}."] if collapse else []
    with open(sm.output.html, "w") as fh:
        fh.write(
            to_html(table, f"Claims of Bhargav & Gu (2024) on run {sm.wildcards.run}", [ran], notes)
        )
