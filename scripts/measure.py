"""Rule measure_<table>: one table of a run (affine_icl/measure.py TABLES), where the claims
and the figures read it: from the folded weights, the population, the cache families the table
declares, the weights as trained where it reads them, the tables it needs (by name, as CSV), its
declared analysis.* params and loss_from."""

import pandas as pd

from affine_icl.config import RunAnalysis, run_config
from affine_icl.measure import TABLES, RunInputs, run_tables
from affine_icl.model import load_model
from affine_icl.rules import analysis_run, analysis_settings, rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    table = TABLES[sm.params.table]
    run = analysis_run(sm, layers=table.layers, with_cache=bool(table.families))
    settings = RunAnalysis(
        analysis_settings(sm), sm.params.loss_from, run_config(sm.config, sm.wildcards.run).data
    )
    unfolded = load_model(sm.input.unfolded) if table.unfolded else None
    have = {name: pd.read_csv(sm.input[name]) for name in table.needs}
    inputs = RunInputs(run.model, run.pop, run.cache, settings, unfolded)
    result = run_tables(inputs, [table.name], have)[table.name]
    result.to_csv(sm.output.table, index=False)
    log.info("%s: %d rows; columns %s", table.name, len(result), ", ".join(result.columns))
