#!/usr/bin/env bash
# A sweep trained on a GPU node and analysed on its cores, in one device call (issue 26, 31):
#
#   bash bench/gpu_study.sh CONFIGFILE RESULTS DEADLINE_S [RUN ...]
#
# e.g. bash bench/gpu_study.sh configs/init_study.yaml results/init_study 540 inittorch-s0
#      bash bench/gpu_study.sh configs/five_seeds.yaml results 540 seed0 seed1 seed2 seed3 seed4
#      (the paper's five seeds: trained batched, analysed, their weights back; issue 31)
#
#   env       python3 with the wheels in .whl installed in /tmp/site (bash bench/gpu_wheels.sh
#             here; the call carries .whl), the project from PYTHONPATH
#   snakemake $GPU_STUDY_TARGETS (default: atlas sweep_loss_curves) with train_batched (the
#             sweep's runs that differ only in seed and model.init train as one stacked model),
#             measure_over_training on 2 threads (the long pole on a node of many cores; the
#             numbers are those of any thread count),
#             checkpoints every 10,000 steps (not a weight setting), --keep-going, stopped at
#             DEADLINE_S seconds after the start: a stopped trainer checkpoints, and the same
#             command in a second call on the still-warm machine continues from there
#   $OUT      results.tar.gz[.part-*]: every file under RESULTS smaller than 4 MiB (logs, train
#             logs, claims, tables, figures; no weights, optimizer state or checkpoints), split in
#             15 MiB parts; where RUNs are named, weights come first: the tar leaves out the
#             figures (PNG), which rebuild on any machine from the weights; RUN.safetensors: the final weights of each RUN named, in order, as
#             long as everything stays within what one call brings back (8 files, 64 MiB; 12.7 MB
#             a run at the paper's size, so four or five beside the tar); study.log says which
#             were left for the next call
#
# A snakemake stopped at the deadline leaves its lock; the next call removes it (nothing else
# runs snakemake on the node). Used for the init study on 2026-12-04: three calls (training and
# 47 analysis jobs; weights; 43 more jobs), README "Training speed".
set -u
cd "$(dirname "$0")/.." || exit 1
[ $# -ge 3 ] || { echo "usage: bash bench/gpu_study.sh CONFIGFILE RESULTS DEADLINE_S [RUN ...]" >&2; exit 2; }
CONFIG=$1 RESULTS=$2 DEADLINE=$3
shift 3
START=$(date +%s)
rm -rf .snakemake/locks # left by a snakemake stopped at an earlier call's deadline
OUT=${OUT:-results/bench/gpu_study}
mkdir -p "$OUT"
LOG=$OUT/study.log
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
say() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$LOG"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$LOG"
if compgen -G ".whl/*.whl" >/dev/null && ! python3 -c "import snakemake, transformer_lens" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl 2>&1 | tail -3 | tee -a "$LOG"
    # compiled once here, not by each analysis job (a new Python process each): on 2026-12-04
    # the lightest jobs took 22-34 s on the node, which uncompiled imports may explain
    python3 -m compileall -q -j 0 /tmp/site >/dev/null 2>&1
    export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
python3 -c "import torch, snakemake, transformer_lens; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
say "environment ready"

left=$((START + DEADLINE - $(date +%s)))
say "snakemake ${GPU_STUDY_TARGETS:-atlas sweep_loss_curves}, at most $left s"
# SIGTERM first (the trainer checkpoints), SIGKILL 20 s later
timeout --kill-after=20 "$left" python3 -m snakemake --snakefile workflow/Snakefile \
    --cores "$(nproc)" --configfile "$CONFIG" --keep-going --rerun-incomplete \
    --set-threads measure_over_training=2 \
    --config train_batched=True 'train={checkpoint_every: 10000}' \
    -- ${GPU_STUDY_TARGETS:-atlas sweep_loss_curves} >>"$LOG" 2>&1
say "snakemake exit $?"
grep -E "^train \S+: step|final held-out MSE|steps \(.*\) done$|Error in rule|Exiting because" "$LOG" | tail -25

# what comes back: the small files, and the final weights of the runs named
figures=() && [ $# -gt 0 ] && figures=(! -name '*.png') # weights first (see above)
(cd "$(dirname "$RESULTS")" && find "$(basename "$RESULTS")" -type f -size -4M \
    ! -name '*.safetensors' ! -name '*.pt' ! -path '*/checkpoints/*' "${figures[@]}" -print0 |
    tar --null -czf "$OUT/results.tar.gz" -T -)
if [ "$(stat -c %s "$OUT/results.tar.gz")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M -d "$OUT/results.tar.gz" "$OUT/results.tar.gz.part-" && rm "$OUT/results.tar.gz"
fi
used=$(du -cb "$OUT"/results.tar.gz* | tail -1 | cut -f1)
files=$(ls "$OUT"/results.tar.gz* | wc -l)
for run in "$@"; do
    weights=$RESULTS/runs/$run/model.safetensors
    if [ ! -f "$weights" ]; then say "no weights for $run yet" && continue; fi
    size=$(stat -c %s "$weights")
    # 64 MiB and 8 files in all come back, study.log (under 1 MiB) included
    if ((used + size > 63 * 1024 * 1024 || files + 2 > 8)); then
        say "weights of $run left for the next call (what comes back is full)" && continue
    fi
    cp "$weights" "$OUT/$run.safetensors" && used=$((used + size)) && files=$((files + 1))
done
ls -la "$OUT" | tee -a "$LOG"
say "done"
