"""Rule aggregate_claims_over_training: the claims over training of every run in one figure."""

from affine_icl.aggregate import runs_table, verdict_settled_since
from affine_icl.claims.registry import CLAIMS
from affine_icl.figures.claims import plot_claims_over_training
from affine_icl.figures.style import save_figure
from affine_icl.rule_settings import settings_from_params
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]):
    table = runs_table(sm.params.runs, sm.input.tables)
    table.to_csv(sm.output.csv, index=False)
    save_figure(
        plot_claims_over_training(
            table,
            settings_from_params(sm.params, "claims"),
            {c.id: c.reported for c in CLAIMS},
            f"Claims over training, {len(sm.params.runs)} run(s): each claim measured at every "
            "weights snapshot, one line per run; dotted: from here on every run's verdict is "
            "its final one",
            verdict_settled_since(table).set_index("claim_id")["settled_since"].to_dict(),
        ),
        sm.output.png,
    )
