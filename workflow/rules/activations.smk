rule cache_activations:
    """Fold LayerNorm and value biases, then cache the analysis population's activations."""
    input:
        weights=trained("weights"),
        population=population,
    output:
        folded=f"{run_dir()}/model_folded.safetensors",
        cache=expand("{dir}/activations/{family}.parquet", dir=run_dir(), family=CACHE_FAMILIES),
    log:
        log_path("cache_activations"),
    threads: threads_of("cache_activations")
    resources:
        **resources_of("cache_activations"),
    params:
        **analysis_params("cache_batch_size"),
    script:
        "../../scripts/cache_activations.py"


rule head_scores:
    """Every per-head score (previous-token, second-vector, checkerboard, eigenvalue, QK, rank),
    each beside its chance level and effect size (affine_icl/analysis/chance.py)."""
    input:
        **analysis_inputs("pattern"),
    output:
        table=f"{run_dir()}/analysis/head_scores.csv",
    log:
        log_path("head_scores"),
    threads: threads_of("head_scores")
    resources:
        **resources_of("head_scores"),
    params:
        **analysis_params("pick_c_threshold", "null_draws", "seed"),
    script:
        "../../scripts/head_scores.py"
