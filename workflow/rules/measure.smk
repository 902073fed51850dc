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
