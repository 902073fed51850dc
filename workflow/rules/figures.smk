rule fig01_sequence_types:
    """Figure 1: an oscillating, a decaying and a growing example sequence."""
    input:
        examples=rules.generate_data.output.examples,
    output:
        png=report(
            f"{RESULTS}/figures/fig01_sequence_types.png",
            caption="../report/fig01_sequence_types.rst",
            category="2. Figures by run",
            subcategory="data",
        ),
        table=f"{RESULTS}/figures/fig01_sequence_types.csv",
    log:
        f"{RESULTS}/logs/fig01_sequence_types.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        dims_shown=config["figures"]["fig01_dims_shown"],
    script:
        "../../scripts/fig01_sequence_types.py"


rule fig02_loss_curve:
    """Figure 2: training loss and held-out MSE against step."""
    input:
        log=trained("log"),
    output:
        png=f"{run_dir()}/figures/fig02_loss_curve.png",
        table=f"{run_dir()}/figures/fig02_loss_curve.csv",
    log:
        f"{RESULTS}/logs/fig02_loss_curve/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        paper_mse=config["figures"]["paper_mse"],
    script:
        "../../scripts/fig02_loss_curve.py"


rule fig03_attention_layer0:
    """Figure 3: layer-0 attention patterns (mean over the population)."""
    input:
        **analysis_inputs("pattern"),
    output:
        **figure_outputs("fig03_attention_layer0"),
    log:
        f"{RESULTS}/logs/fig03_attention_layer0/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig03_attention_layer0.py"


rule fig04_attention_layer1:
    """Figure 4: layer-1 attention patterns (mean over the population)."""
    input:
        **analysis_inputs("pattern"),
    output:
        **figure_outputs("fig04_attention_layer1"),
    log:
        f"{RESULTS}/logs/fig04_attention_layer1/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig04_attention_layer1.py"


rule fig05_attention_layer2_alternating:
    """Figure 5: layer-2 attention patterns on one alternating sequence (c < 0)."""
    input:
        **analysis_inputs("pattern"),
    output:
        **figure_outputs("fig05_attention_layer2_alternating"),
    log:
        f"{RESULTS}/logs/fig05_attention_layer2_alternating/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig05_attention_layer2_alternating.py"


rule fig06_attention_layer2_non_alternating:
    """Figure 6: layer-2 attention patterns on one non-alternating sequence (c > 0)."""
    input:
        **analysis_inputs("pattern"),
    output:
        **figure_outputs("fig06_attention_layer2_non_alternating"),
    log:
        f"{RESULTS}/logs/fig06_attention_layer2_non_alternating/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig06_attention_layer2_non_alternating.py"


rule fig07_head_attribution:
    """Figure 7: direct attribution of every head, both variants."""
    input:
        **analysis_inputs("head_result"),
    output:
        **figure_outputs("fig07_head_attribution"),
    log:
        f"{RESULTS}/logs/fig07_head_attribution/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig07_head_attribution.py"


rule fig08_layer0_ov:
    """Figure 8: layer-0 summed OV on residual vectors: scatter, R^2 and slope per vector."""
    input:
        **analysis_inputs("resid"),
    output:
        **figure_outputs("fig08_layer0_ov"),
    log:
        f"{RESULTS}/logs/fig08_layer0_ov/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
        paper={"r2 (residual)": 0.83, "r2 (random)": 0.598, "slope_low": 2.1, "slope_high": 2.5},
    script:
        "../../scripts/fig08_layer0_ov.py"


rule fig09_layer0_ov_matrix:
    """Figure 9: the summed layer-0 OV matrix."""
    input:
        **analysis_inputs(),
    output:
        **figure_outputs("fig09_layer0_ov_matrix"),
    log:
        f"{RESULTS}/logs/fig09_layer0_ov_matrix/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig09_layer0_ov_matrix.py"


rule fig10_layer0_ov_random:
    """Figure 10: the layer-0 OV fit on random vectors of matched norms."""
    input:
        **analysis_inputs("resid"),
        regressions=rules.fig08_layer0_ov.output.table,
    output:
        **figure_outputs("fig10_layer0_ov_random"),
    log:
        f"{RESULTS}/logs/fig10_layer0_ov_random/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
        paper={"r2 (residual)": 0.832, "r2 (random)": 0.598},
    script:
        "../../scripts/fig10_layer0_ov_random.py"


rule embedding_span:
    """Share of layer-0 OV output outside the row space of W_E (paper: 84.15%)."""
    input:
        **analysis_inputs("resid"),
    output:
        **figure_outputs("embedding_span"),
    log:
        f"{RESULTS}/logs/embedding_span/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
        paper_share=0.8415,
    script:
        "../../scripts/embedding_span.py"


rule mean_ablation_layer1:
    """Mean ablation of layer-1 heads on the analysis population (paper: MSE 2e-4)."""
    input:
        **analysis_inputs(),
    output:
        **figure_outputs("mean_ablation_layer1"),
    log:
        f"{RESULTS}/logs/mean_ablation_layer1/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
        loss_from=config["train"]["loss_from_index"],
        paper_mse=2e-4,
    script:
        "../../scripts/mean_ablation_layer1.py"


rule fig11_layer1_ov:
    """Figure 11: OV of the layer-1 head with the lowest effective rank."""
    input:
        **analysis_inputs(scores=True),
    output:
        **figure_outputs("fig11_layer1_ov"),
        singular_values=f"{run_dir()}/figures/fig11_layer1_ov_singular_values.csv",
    log:
        f"{RESULTS}/logs/fig11_layer1_ov/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig11_layer1_ov.py"


rule fig12_layer2_ov:
    """Figure 12: OV of the most negative-copying layer-2 head, d_model and W_E/W_U bases."""
    input:
        **analysis_inputs(scores=True),
    output:
        **figure_outputs("fig12_layer2_ov"),
    log:
        f"{RESULTS}/logs/fig12_layer2_ov/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig12_layer2_ov.py"


rule fig13_layer2_qk:
    """Figure 13: QK of the layer-2 head whose QK is closest to the identity."""
    input:
        **analysis_inputs(scores=True),
    output:
        **figure_outputs("fig13_layer2_qk"),
    log:
        f"{RESULTS}/logs/fig13_layer2_qk/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig13_layer2_qk.py"


rule fig14_residual_after_layer0:
    """Figure 14: the residual after layer 0, decoded through ln_final and W_U, vs the truth."""
    input:
        **analysis_inputs("resid"),
    output:
        **figure_outputs("fig14_residual_after_layer0"),
        summary=f"{run_dir()}/analysis/residual_after_layer0.csv",
    log:
        f"{RESULTS}/logs/fig14_residual_after_layer0/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
        loss_from=config["train"]["loss_from_index"],
    script:
        "../../scripts/fig14_residual_after_layer0.py"


rule fig15_eigenvalue_scores:
    """Figure 15: OV eigenvalue scores sum(l)/sum(|l|) of every head."""
    input:
        scores=rules.head_scores.output.table,
    output:
        **figure_outputs("fig15_eigenvalue_scores"),
    log:
        f"{RESULTS}/logs/fig15_eigenvalue_scores/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../../scripts/fig15_eigenvalue_scores.py"


rule qk_intervention:
    """QK intervention: W_Q random, W_K^T = pinv(W_Q) on layer-2 heads whose QK resembles I."""
    input:
        **analysis_inputs(scores=True),
    output:
        **figure_outputs("qk_intervention"),
    log:
        f"{RESULTS}/logs/qk_intervention/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
        loss_from=config["train"]["loss_from_index"],
        paper_mse=1e-4,
    script:
        "../../scripts/qk_intervention.py"


rule fig16_mlp_attribution:
    """Figure 16: direct attribution of each layer's MLP by position."""
    input:
        **analysis_inputs("mlp_out"),
    output:
        **figure_outputs("fig16_mlp_attribution"),
    log:
        f"{RESULTS}/logs/fig16_mlp_attribution/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig16_mlp_attribution.py"


rule fig17_residual_shape:
    """Figure 17: residual before/after layer 0 vs a_n + alpha a_(n-1) (alpha from Fig 8) vs a_(n+1)."""
    input:
        **analysis_inputs("resid"),
        regressions=rules.fig08_layer0_ov.output.table,
    output:
        **figure_outputs("fig17_residual_shape"),
        summary=f"{run_dir()}/analysis/residual_shape.csv",
    log:
        f"{RESULTS}/logs/fig17_residual_shape/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
        paper_alpha=2.3,
    script:
        "../../scripts/fig17_residual_shape.py"


rule fig18_attention_example:
    """Figure 18: one attention pattern: the strongest previous-token head on one sequence."""
    input:
        **analysis_inputs("pattern", scores=True),
    output:
        **figure_outputs("fig18_attention_example"),
    log:
        f"{RESULTS}/logs/fig18_attention_example/{{run}}.log",
    conda:
        "../../envs/pipeline.yaml"
    params:
        analysis=config["analysis"],
    script:
        "../../scripts/fig18_attention_example.py"
