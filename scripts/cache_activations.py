"""Rule cache_activations: folded weights and the analysis population's activations (Parquet)."""

from pathlib import Path

from affine_icl.activations import write_activation_cache
from affine_icl.analysis.population import analysis_population
from affine_icl.batches import use_threads
from affine_icl.data import read_parquet
from affine_icl.model import write_folded
from affine_icl.rules import analysis_settings, check_provenance, rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    check_provenance(sm)
    use_threads(sm.threads)
    settings = analysis_settings(sm)
    folded, provenance = write_folded(sm.input.weights, sm.output.folded)
    pop = analysis_population(
        read_parquet(sm.input.population, "evaluation population"),
        settings.population_length,
        settings.population_size,
    )
    log.info("caching %d sequences of length %d", len(pop), settings.population_length)
    write_activation_cache(
        folded,
        pop.inputs,
        pop.targets,
        pop.sample,
        Path(sm.output.cache[0]).parent,
        provenance,
        batch_size=settings.cache_batch_size,
    )
