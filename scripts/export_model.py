"""Rule export_model: the run as a shareable model directory (weights, config, model card)."""

import pandas as pd

from affine_icl.export import export_model
from affine_icl.rules import check_provenance, rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    check_provenance(sm)
    paths = export_model(
        sm.input.weights,
        pd.read_parquet(sm.input.train_log),
        pd.read_csv(sm.input.claims),
        sm.params.directory,
        sm.wildcards.run,
    )
    log.info("exported run %s to %s", sm.wildcards.run, ", ".join(map(str, paths.values())))
