"""Rule generate_task_data: the evaluation population of runs whose data differ from the config's
own section (another task family, or other ranges), drawn from their data settings."""

from affine_icl.config import data_config
from affine_icl.data import population_table, write_parquet
from affine_icl.provenance import code_version
from affine_icl.rule_settings import settings_from_params
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    cfg = data_config({"data": settings_from_params(sm.params, "data")})
    population = population_table(cfg)
    write_parquet(population, sm.output.population, {"data_config": repr(cfg), **code_version()})
    log.info("wrote %d %s sequences to %s", population.num_rows, cfg.task, sm.output.population)
