rule claims:
    """Every quantitative claim of the paper: paper value, this run's value, criterion, verdict."""
    input:
        train_log=trained("log"),
        head_scores=rules.head_scores.output.table,
        head_attribution=rules.fig07_head_attribution.output.table,
        ov_regressions=rules.fig08_layer0_ov.output.table,
        embedding_span=rules.embedding_span.output.table,
        mean_ablation=rules.mean_ablation_layer1.output.table,
        qk_intervention=rules.qk_intervention.output.table,
        mlp_attribution=rules.fig16_mlp_attribution.output.table,
        residual_after_layer0=rules.fig14_residual_after_layer0.output.summary,
        residual_shape=rules.fig17_residual_shape.output.summary,
    output:
        csv=f"{run_dir()}/claims.csv",
        md=report(
            f"{run_dir()}/claims.md",
            caption="../report/claims.rst",
            category="0. Claims",
            subcategory="{run}",
        ),
    log:
        log_path("claims"),
    conda:
        "../../envs/pipeline.yaml"
    params:
        criteria=config["claims"],
        analysis=config["analysis"],
        loss_from=config["train"]["loss_from_index"],
        paper=PAPER_VALUES,
    script:
        "../../scripts/claims.py"
