"""Rule claims: the paper's quantitative claims with this run's measurements and verdicts,
each verdict's margin, and the other reading of the paper's words where it gets closer."""

from affine_icl.claims.table import claims_table
from affine_icl.config import run_config
from affine_icl.data import collapse_warning
from affine_icl.margins import ROBUST_RULE
from affine_icl.protocol import protocol_note
from affine_icl.render import readable, to_html, to_markdown
from affine_icl.rules import claim_inputs, rule_log
from affine_icl.sensitivity import better_readings, margins_table, other_readings

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    tables, criteria, settings = claim_inputs(sm)
    margins = margins_table(tables, criteria, settings)
    readings = better_readings(
        other_readings(tables, criteria, settings), margins.set_index("claim_id")["verdict"]
    )
    table = claims_table(tables, criteria, settings, margins, readings)
    table.to_csv(sm.output.csv, index=False)
    counts = table["verdict"].value_counts().to_dict()
    header = (
        f"# Claims of Bhargav & Gu (2024) on run {sm.wildcards.run}\n\n"
        + ", ".join(f"{v}: {n}" for v, n in counts.items())
        + f"; a measurement at chance would pass the criterion of {int(table['chance_passes'].sum())}"
        "\n\nEach verdict's margin: how much stricter (or looser) its definition can be made "
        "before the verdict changes (claims_sensitivity.png draws the grid).\n\n"
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
            to_html(
                table,
                f"Claims of Bhargav & Gu (2024) on run {sm.wildcards.run}",
                [ran],
                notes,
                ROBUST_RULE,
            )
        )
