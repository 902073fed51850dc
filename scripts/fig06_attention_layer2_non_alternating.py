"""Rule fig06_attention_layer2_non_alternating: Figure 6, layer-2 patterns on one non-alternating sequence."""
from affine_icl.analysis.attention import pattern_table
from affine_icl.analysis.population import pick_by_sign_of_c
from affine_icl.figures import plot_attention_patterns
from affine_icl.rules import analysis_run, rule_log, write_outputs

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_log(sm.log[0]) as log:
    run = analysis_run(sm, layers=[2])
    index = pick_by_sign_of_c(run.pop, run.params["pick_c_threshold"])["non-alternating"]
    c = float(run.pop.c[index])
    log.info("picked sample %d (c = %.3f), the first with %s", run.pop.sample[index], c,
             "c < -threshold" if "non-alternating" == "alternating" else "c > threshold")
    table = pattern_table(run.cache, 2, samples=[index]).assign(
        sample=int(run.pop.sample[index]), c=c, picked_by="first sequence with non-alternating sign of c")
    write_outputs(sm, table, plot_attention_patterns(
        table, f"Figure 6: layer-2 attention on a non-alternating sequence (sample {run.pop.sample[index]}, c = {c:.2f})"))
