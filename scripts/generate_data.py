"""Rule generate_data: the fixed evaluation population and Figure 1's example sequences."""
from affine_icl.config import data_config
from affine_icl.data import example_sequences, population_table, write_parquet
from affine_icl.rules import rule_log

with rule_log(snakemake.log[0]) as log:  # noqa: F821 - injected by Snakemake
    cfg = data_config(snakemake.params)  # noqa: F821
    meta = {"data_config": repr(cfg)}
    population = population_table(cfg)
    write_parquet(population, snakemake.output.population, meta)  # noqa: F821
    log.info("wrote %d evaluation sequences to %s", population.num_rows, snakemake.output.population)  # noqa: F821
    write_parquet(example_sequences(cfg), snakemake.output.examples, meta)  # noqa: F821
