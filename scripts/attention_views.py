"""Rule attention_views: per layer, an interactive page of every head's attention on the
Figure 5 and 6 sequences and the mean pattern (circuitsvis), and an index page."""

from pathlib import Path

from affine_icl.analysis.attention import attention_views
from affine_icl.rules import analysis_run, rule_log
from affine_icl.views import attention_page, index_page

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    run = analysis_run(sm)
    out = Path(sm.output.views)
    out.mkdir(parents=True, exist_ok=True)
    name = sm.wildcards.run
    links = {}
    for layer in range(run.model.cfg.n_layers):
        views = attention_views(run.cache, run.pop, layer, run.settings.pick_c_threshold)
        page = f"layer{layer}.html"
        (out / page).write_text(
            attention_page(
                views,
                layer,
                f"Run {name}, layer {layer}: attention of every head",
                "Hover a head to see its pattern, click to keep it (rows: the query, the "
                "position attending; columns: the key, the position attended to; position p "
                "holds a_p). Each head appears three times: on the Figure 5 sequence (the "
                "first with c < 0; #: its sample id), on the Figure 6 sequence (c > 0), and "
                "averaged over the analysis population.",
            )
        )
        links[f"layer {layer}: " + "; ".join(views)] = page
        log.info("layer %d: %s", layer, ", ".join(views))
    (out / "index.html").write_text(
        index_page(
            f"Run {name}: interactive attention patterns",
            "One page per layer (circuitsvis; works offline).",
            links,
        )
    )
