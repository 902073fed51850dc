"""Rule claims_over_training: every claim judged at each weights snapshot on the tables
measure_over_training wrote, and at the end on the tables the claims rule reads."""

from affine_icl.aggregate import verdict_settled_since
from affine_icl.claims.registry import CLAIMS
from affine_icl.config import run_config
from affine_icl.figures.claims import plot_claims_over_training
from affine_icl.figures.style import save_figure
from affine_icl.model import read_metadata
from affine_icl.over_training import claims_over_training, no_snapshots_reason
from affine_icl.rules import claim_inputs, read_tables, rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    final, criteria, settings = claim_inputs(sm)  # the final weights' tables
    # the snapshots' tables, an old one refused with the rule that rebuilds them
    over_training = read_tables(sm, "over_training_", rule="measure_over_training")
    final_step = int(read_metadata(sm.input.weights)["step"])
    table = claims_over_training(over_training, final, final_step, criteria, settings)
    steps = sorted(set(table["step"]))
    log.info("judged the claims at steps %s", steps)
    train = run_config(sm.config, sm.wildcards.run).train
    reason = no_snapshots_reason(train.steps, train.snapshot_every)
    if len(steps) == 1:
        log.warning(
            "run %s has no weights snapshot before its final step (%s): only that step is judged",
            sm.wildcards.run,
            reason,
        )
    table.to_csv(sm.output.csv, index=False)
    settled = verdict_settled_since(table.assign(run=sm.wildcards.run))
    save_figure(
        plot_claims_over_training(
            table.assign(run=sm.wildcards.run),
            criteria,
            {c.id: c.reported for c in CLAIMS},
            f"Claims over training, run {sm.wildcards.run}: each claim measured at every "
            f"weights snapshot ({len(steps)} steps)"
            if len(steps) > 1
            else f"Claims of run {sm.wildcards.run} at its final step only: no weights "
            f"snapshot before it ({reason})",
            settled.set_index("claim_id")["settled_since"].to_dict() if len(steps) > 1 else None,
        ),
        sm.output.png,
    )
