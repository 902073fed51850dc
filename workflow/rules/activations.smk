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
