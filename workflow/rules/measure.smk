# One job per table of a run (affine_icl/measure.py TABLES): what the claims judge and the
# analyses' figures draw, each computed in one place (the claims over training compute the same
# tables in memory, through the same function). Each job's inputs and params come from its
# table's entry: the cache families it reads, the tables it needs, the analysis settings it uses.
for _name, _table in MEASURED_TABLES.items():

    rule:
        """One table of a run, written where the claims and its figure read it."""
        name:
            f"measure_{_name}"
        input:
            **measure_inputs(_table),
        output:
            table=measured(_name),
        log:
            log_path(f"measure_{_name}"),
        threads: threads_of(f"measure_{_name}")
        resources:
            **resources_of(f"measure_{_name}"),
        params:
            **analysis_params(*_table.settings),
            loss_from=loss_from,
            table=_name,
        script:
            "../../scripts/measure.py"


# The same tables at every weights snapshot before the final step (the claims over training judge
# them): one CSV per table with a step column.
OVER_TRAINING = {name: f"{run_dir()}/over_training/{name}.csv" for name in MEASURED_TABLES}


rule measure_over_training:
    """Every table of a run (affine_icl/measure.py TABLES) at each weights snapshot before the
    final step (train.snapshot_every), from one in-memory activation pass per snapshot
    (affine_icl/over_training.py); the final weights' tables are the measure rules'."""
    input:
        weights=trained("weights"),
        snapshots=trained("snapshots"),
        population=population,
    output:
        **OVER_TRAINING,
    log:
        log_path("measure_over_training"),
    threads: threads_of("measure_over_training")
    resources:
        **resources_of("measure_over_training"),
    params:
        **analysis_params(
            "cache_batch_size",
            *sorted({key for table in MEASURED_TABLES.values() for key in table.settings}),
        ),
        loss_from=loss_from,
    script:
        "../../scripts/measure_over_training.py"
