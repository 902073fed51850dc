rule fig01_sequence_types:
    """Figure 1: an oscillating, a decaying and a growing example sequence."""
    input:
        examples=rules.generate_data.output.examples,
    output:
        png=f"{RESULTS}/figures/fig01_sequence_types.png",
        table=f"{RESULTS}/figures/fig01_sequence_types.csv",
    params:
        dims_shown=config["figures"]["fig01_dims_shown"],
    log:
        f"{RESULTS}/logs/fig01_sequence_types.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../../scripts/fig01_sequence_types.py"


rule fig02_loss_curve:
    """Figure 2: training loss and held-out MSE against step."""
    input:
        log=rules.train.output.log,
    output:
        png=f"{run_dir()}/figures/fig02_loss_curve.png",
        table=f"{run_dir()}/figures/fig02_loss_curve.csv",
    params:
        paper_mse=config["figures"]["paper_mse"],
    log:
        f"{RESULTS}/logs/fig02_loss_curve/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../../scripts/fig02_loss_curve.py"
