# One rule per figure (the table of contents of section 4), each an entry of the figure registry
# (affine_icl/figures/registry.py): figure_inputs() reads the cache families its entry names,
# figure_outputs() writes its PNG and the table behind it, log_path() its log (common.smk); the
# Snakefile gives every rule its benchmark and conda environment. Rules that quote or draw the
# paper's numbers take them as params.paper (affine_icl/paper.py).


rule fig01_sequence_types:
    """Figure 1: an oscillating, a decaying and a growing example sequence."""
    input:
        examples=rules.generate_data.output.examples,
    output:
        **figure_outputs("fig01_sequence_types", run=None),
    log:
        log_path("fig01_sequence_types", run=None),
    threads: threads_of("fig01_sequence_types")
    resources:
        **resources_of("fig01_sequence_types"),
    params:
        # one-entry dict, as every setting param: a rerun reason then names the key
        **setting_params({"figures.fig01_dims_shown": config["figures"]["fig01_dims_shown"]}),
    script:
        "../../scripts/fig01_sequence_types.py"


rule fig02_loss_curve:
    """Figure 2: training loss and held-out MSE against step."""
    input:
        log=trained("log"),
    output:
        **figure_outputs("fig02_loss_curve"),
    log:
        log_path("fig02_loss_curve"),
    threads: threads_of("fig02_loss_curve")
    resources:
        **resources_of("fig02_loss_curve"),
    params:
        paper=PAPER_VALUES,
    script:
        "../../scripts/fig02_loss_curve.py"


rule fig03_attention_layer0:
    """Figures 3 and 4: mean attention patterns of layer 0 (fig04: layer 1) over the population,
    each head's score against the uniform share under its title."""
    input:
        **figure_inputs("fig03_attention_layer0", scores=True),
    output:
        **figure_outputs("fig03_attention_layer0"),
    log:
        log_path("fig03_attention_layer0"),
    threads: threads_of("fig03_attention_layer0")
    resources:
        **resources_of("fig03_attention_layer0"),
    params:
        **analysis_params("previous_token_min_ratio", "key1_min_ratio"),
        figure=3,
        layer=0,
    script:
        "../../scripts/fig03_attention_layer0.py"


# Figure 4: layer-1 attention patterns (mean over the population).
use rule fig03_attention_layer0 as fig04_attention_layer1 with:
    input:
        **figure_inputs("fig04_attention_layer1", scores=True),
    output:
        **figure_outputs("fig04_attention_layer1"),
    log:
        log_path("fig04_attention_layer1"),
    threads: threads_of("fig04_attention_layer1")
    resources:
        **resources_of("fig04_attention_layer1"),
    params:
        figure=4,
        layer=1,


rule fig05_attention_layer2_alternating:
    """Figures 5 and 6: layer-2 attention patterns on one alternating sequence (c < 0; fig06:
    one non-alternating sequence, c > 0)."""
    input:
        **figure_inputs("fig05_attention_layer2_alternating"),
    output:
        **figure_outputs("fig05_attention_layer2_alternating"),
    log:
        log_path("fig05_attention_layer2_alternating"),
    threads: threads_of("fig05_attention_layer2_alternating")
    resources:
        **resources_of("fig05_attention_layer2_alternating"),
    params:
        **analysis_params("pick_c_threshold"),
        figure=5,
        layer=2,
        sequence="alternating",
    script:
        "../../scripts/fig05_attention_layer2_alternating.py"


# Figure 6: layer-2 attention patterns on one non-alternating sequence (c > 0).
use rule fig05_attention_layer2_alternating as fig06_attention_layer2_non_alternating with:
    input:
        **figure_inputs("fig06_attention_layer2_non_alternating"),
    output:
        **figure_outputs("fig06_attention_layer2_non_alternating"),
    log:
        log_path("fig06_attention_layer2_non_alternating"),
    threads: threads_of("fig06_attention_layer2_non_alternating")
    resources:
        **resources_of("fig06_attention_layer2_non_alternating"),
    params:
        figure=6,
        sequence="non-alternating",


rule fig07_head_attribution:
    """Figure 7: direct attribution of every head, both variants."""
    input:
        **figure_inputs("fig07_head_attribution"),
    output:
        **figure_outputs("fig07_head_attribution", table=False),
    log:
        log_path("fig07_head_attribution"),
    threads: threads_of("fig07_head_attribution")
    resources:
        **resources_of("fig07_head_attribution"),
    params:
        **analysis_params(),
    script:
        "../../scripts/fig07_head_attribution.py"


rule fig08_layer0_ov:
    """Figure 8: layer-0 summed OV on residual vectors: scatter, R^2 and slope per vector."""
    input:
        **figure_inputs("fig08_layer0_ov"),
        unfolded=trained("weights"),
    output:
        **figure_outputs("fig08_layer0_ov", table=False),
    log:
        log_path("fig08_layer0_ov"),
    threads: threads_of("fig08_layer0_ov")
    resources:
        **resources_of("fig08_layer0_ov"),
    params:
        **analysis_params("seed"),
        paper=PAPER_VALUES,
    script:
        "../../scripts/fig08_layer0_ov.py"


rule fig09_layer0_ov_matrix:
    """Figure 9: the summed layer-0 OV matrix."""
    input:
        **figure_inputs("fig09_layer0_ov_matrix"),
    output:
        **figure_outputs("fig09_layer0_ov_matrix"),
    log:
        log_path("fig09_layer0_ov_matrix"),
    threads: threads_of("fig09_layer0_ov_matrix")
    resources:
        **resources_of("fig09_layer0_ov_matrix"),
    params:
        **analysis_params(),
    script:
        "../../scripts/fig09_layer0_ov_matrix.py"


rule fig10_layer0_ov_random:
    """Figure 10: the layer-0 OV fit on random vectors of matched norms."""
    input:
        **figure_inputs("fig10_layer0_ov_random"),
        unfolded=trained("weights"),
        regressions=measured("ov_regressions"),
    output:
        **figure_outputs("fig10_layer0_ov_random"),
    log:
        log_path("fig10_layer0_ov_random"),
    threads: threads_of("fig10_layer0_ov_random")
    resources:
        **resources_of("fig10_layer0_ov_random"),
    params:
        **analysis_params("seed"),
        paper=PAPER_VALUES,
    script:
        "../../scripts/fig10_layer0_ov_random.py"


rule embedding_span:
    """Share of layer-0 OV output outside the row space of W_E (section 4.4)."""
    input:
        **figure_inputs("embedding_span"),
    output:
        **figure_outputs("embedding_span", table=False),
    log:
        log_path("embedding_span"),
    threads: threads_of("embedding_span")
    resources:
        **resources_of("embedding_span"),
    params:
        paper=PAPER_VALUES,
    script:
        "../../scripts/embedding_span.py"


rule mean_ablation_layer1:
    """Mean ablation of layer-1 heads on the analysis population (section 4.5)."""
    input:
        **figure_inputs("mean_ablation_layer1"),
    output:
        **figure_outputs("mean_ablation_layer1", table=False),
    log:
        log_path("mean_ablation_layer1"),
    threads: threads_of("mean_ablation_layer1")
    resources:
        **resources_of("mean_ablation_layer1"),
    params:
        paper=PAPER_VALUES,
    script:
        "../../scripts/mean_ablation_layer1.py"


rule fig11_layer1_ov:
    """Figure 11: OV of the layer-1 head with the lowest effective rank."""
    input:
        **figure_inputs("fig11_layer1_ov", scores=True),
    output:
        **figure_outputs("fig11_layer1_ov"),
        singular_values=f"{run_dir()}/figures/fig11_layer1_ov_singular_values.csv",
    log:
        log_path("fig11_layer1_ov"),
    threads: threads_of("fig11_layer1_ov")
    resources:
        **resources_of("fig11_layer1_ov"),
    params:
        **analysis_params(),
    script:
        "../../scripts/fig11_layer1_ov.py"


rule fig12_layer2_ov:
    """Figure 12: OV of the most negative-copying layer-2 head, d_model and W_E/W_U bases."""
    input:
        **figure_inputs("fig12_layer2_ov", scores=True),
    output:
        **figure_outputs("fig12_layer2_ov"),
    log:
        log_path("fig12_layer2_ov"),
    threads: threads_of("fig12_layer2_ov")
    resources:
        **resources_of("fig12_layer2_ov"),
    params:
        **analysis_params(),
    script:
        "../../scripts/fig12_layer2_ov.py"


rule fig13_layer2_qk:
    """Figure 13: QK of the layer-2 head whose QK stands furthest above its shuffled null."""
    input:
        **figure_inputs("fig13_layer2_qk", scores=True),
    output:
        **figure_outputs("fig13_layer2_qk"),
    log:
        log_path("fig13_layer2_qk"),
    threads: threads_of("fig13_layer2_qk")
    resources:
        **resources_of("fig13_layer2_qk"),
    params:
        **analysis_params("qk_identity_min_z"),
    script:
        "../../scripts/fig13_layer2_qk.py"


rule fig14_residual_after_layer0:
    """Figure 14: the residual after layer 0, decoded through ln_final and W_U, vs the truth."""
    input:
        **figure_inputs("fig14_residual_after_layer0"),
    output:
        **figure_outputs("fig14_residual_after_layer0"),
    log:
        log_path("fig14_residual_after_layer0"),
    threads: threads_of("fig14_residual_after_layer0")
    resources:
        **resources_of("fig14_residual_after_layer0"),
    params:
        **analysis_params("residual_dims"),
    script:
        "../../scripts/fig14_residual_after_layer0.py"


rule fig15_eigenvalue_scores:
    """Figure 15: OV eigenvalue scores sum(l)/sum(|l|) of every head."""
    input:
        scores=measured("head_scores"),
    output:
        **figure_outputs("fig15_eigenvalue_scores"),
    log:
        log_path("fig15_eigenvalue_scores"),
    threads: threads_of("fig15_eigenvalue_scores")
    resources:
        **resources_of("fig15_eigenvalue_scores"),
    params:
        min_z=config["analysis"]["negative_copying_min_z"],
    script:
        "../../scripts/fig15_eigenvalue_scores.py"


rule qk_intervention:
    """QK intervention: W_Q random, W_K^T = pinv(W_Q) on layer-2 heads whose QK resembles I."""
    input:
        **figure_inputs("qk_intervention"),
    output:
        **figure_outputs("qk_intervention", table=False),
    log:
        log_path("qk_intervention"),
    threads: threads_of("qk_intervention")
    resources:
        **resources_of("qk_intervention"),
    params:
        paper=PAPER_VALUES,
    script:
        "../../scripts/qk_intervention.py"


rule fig16_mlp_attribution:
    """Figure 16: direct attribution of each layer's MLP by position."""
    input:
        **figure_inputs("fig16_mlp_attribution"),
    output:
        **figure_outputs("fig16_mlp_attribution", table=False),
    log:
        log_path("fig16_mlp_attribution"),
    threads: threads_of("fig16_mlp_attribution")
    resources:
        **resources_of("fig16_mlp_attribution"),
    params:
        **analysis_params(),
    script:
        "../../scripts/fig16_mlp_attribution.py"


rule fig17_residual_shape:
    """Figure 17: residual before/after layer 0 vs a_n + alpha a_(n-1) (alpha from Fig 8) vs a_(n+1)."""
    input:
        **figure_inputs("fig17_residual_shape"),
        regressions=measured("ov_regressions"),
    output:
        **figure_outputs("fig17_residual_shape"),
    log:
        log_path("fig17_residual_shape"),
    threads: threads_of("fig17_residual_shape")
    resources:
        **resources_of("fig17_residual_shape"),
    params:
        **analysis_params("pick_c_threshold", "residual_dims"),
        paper=PAPER_VALUES,
    script:
        "../../scripts/fig17_residual_shape.py"


rule fig18_attention_example:
    """Figure 18: one attention pattern: the strongest previous-token head on one sequence."""
    input:
        **figure_inputs("fig18_attention_example", scores=True),
    output:
        **figure_outputs("fig18_attention_example"),
    log:
        log_path("fig18_attention_example"),
    threads: threads_of("fig18_attention_example")
    resources:
        **resources_of("fig18_attention_example"),
    params:
        **analysis_params(),
    script:
        "../../scripts/fig18_attention_example.py"
