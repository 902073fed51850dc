"""Rule cache_activations: folded weights and the analysis population's activations (Parquet)."""

from pathlib import Path

import pyarrow.parquet as pq
import torch

from affine_icl.activations import write_activation_cache
from affine_icl.analysis.population import analysis_population
from affine_icl.model import fold_weights, load_model, read_metadata, save_weights
from affine_icl.rules import rule_log

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    torch.set_num_threads(sm.threads)
    params = sm.params.analysis
    meta = {
        k: v
        for k, v in read_metadata(sm.input.weights).items()
        if k in ("config_hash", "run_config")
    }
    folded = fold_weights(load_model(sm.input.weights))
    save_weights(
        folded,
        sm.output.folded,
        extra={**meta, "folded": "fold_ln, center_writing_weights, fold_value_biases"},
    )
    pop = analysis_population(
        pq.read_table(sm.input.population), params["population_length"], params["population_size"]
    )
    log.info("caching %d sequences of length %d", len(pop), params["population_length"])
    write_activation_cache(
        folded,
        pop.inputs,
        pop.targets,
        pop.sample,
        Path(sm.output.cache[0]).parent,
        meta,
        batch_size=params["cache_batch_size"],
    )
