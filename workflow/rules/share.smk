# Sharing and exploring a trained run: an export with a model card, interactive attention views.


rule export_model:
    """The run as a shareable model directory: weights (safetensors), config.json, model card
    (affine_icl/export.py); load it with affine_icl.load_pretrained."""
    input:
        weights=trained("weights"),
        train_log=trained("log"),
        claims=rules.claims.output.csv,
    output:
        weights=f"{RESULTS}/models/{{run}}/model.safetensors",
        config=f"{RESULTS}/models/{{run}}/config.json",
        card=f"{RESULTS}/models/{{run}}/README.md",
    log:
        log_path("export_model"),
    threads: threads_of("export_model")
    resources:
        **resources_of("export_model"),
    params:
        directory=lambda wc: f"{RESULTS}/models/{wc.run}",
    script:
        "../../scripts/export_model.py"


rule attention_views:
    """Per layer, every head's attention on the Figure 5 and 6 sequences and the mean pattern,
    as an interactive circuitsvis page (affine_icl/views.py), with an index page."""
    input:
        **analysis_inputs("pattern"),
    output:
        views=report(
            directory(f"{run_dir()}/attention_views"),
            patterns=["{page}.html"],
            caption="../report/attention_views.rst",
            category=REPORT_FIGURES,
            subcategory="run {run}",
            labels={
                # sorts right after Fig. 03 in the report
                "in the paper": "Fig. 03-06 (interactive)",
                "figure": "{page}",
                "run": "{run}",
            },
        ),
    log:
        log_path("attention_views"),
    threads: threads_of("attention_views")
    resources:
        **resources_of("attention_views"),
    params:
        **analysis_params("pick_c_threshold"),
    script:
        "../../scripts/attention_views.py"
