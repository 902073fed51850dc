"""Rule generate_data: the fixed evaluation population and Figure 1's example sequences."""

from affine_icl.config import data_config
from affine_icl.data import example_sequences, population_table, write_parquet
from affine_icl.provenance import code_version
from affine_icl.rule_settings import settings_from_params
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    cfg = data_config({"data": settings_from_params(sm.params, "data")})
    meta = {"data_config": repr(cfg), **code_version()}
    population = population_table(cfg)
    write_parquet(population, sm.output.population, meta)
    log.info("wrote %d evaluation sequences to %s", population.num_rows, sm.output.population)
    write_parquet(example_sequences(cfg), sm.output.examples, meta)
