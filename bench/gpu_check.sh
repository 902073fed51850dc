#!/usr/bin/env bash
# The GPU check (issue 15): one call on an H100/H200 machine, from the repository root of a copy
# of the working tree, that measures everything and prints a short summary:
#
#   bash bench/gpu_check.sh
#
#   env         a Python with CUDA torch and the project's test dependencies: $PYTHON, .venv,
#               $GPU_CHECK_VENV (.venv-gpu) or python3 if one works, else a fresh venv there
#               (--system-site-packages, so a CUDA torch already installed is reused) and
#               pip install -e '.[test]' (offline from $GPU_CHECK_WHEELS if set); where no
#               Python is usable and .whl/ holds wheels (bash bench/gpu_wheels.sh, the call
#               carrying .whl), python3 with them installed in /tmp/site, and no venv
#   tests       the CUDA tests and the graph-fallback tests (tests/test_stacked.py, -k 'cuda or
#               recording or replay'; the project's CUDA tests are all there)
#   train_step  bench/train_step.py --device cuda --seeds 8 --compiled (ms/step: reference,
#               project, plain graphed, 8 seeds, compiled; ops per step)
#   to_mse      one seed, paper protocol, until held-out MSE <= 1e-4 (steps and seconds)
#
# The study itself (five seeds trained batched at the protocol, their analyses on the node's
# cores, the weights brought back) is a second call of its own, bench/gpu_study.sh:
#   bash bench/gpu_study.sh configs/five_seeds.yaml results 540 seed0 seed1 seed2 seed3 seed4
#
# Every stage runs under `timeout`, within a total budget ($GPU_CHECK_BUDGET_S, default 470 s),
# so the script ends within 8 minutes; a stage cut short says "timed out (time budget)", which
# is not a failure of the code. Logs, train_step.json, to_mse.json, summary.txt and summary.json
# go to $OUT if set, else to results/bench/gpu_check/. GPU_CHECK_STAGES picks stages (default
# "tests train_step to_mse"); GPU_CHECK_DEVICE=cpu runs them on a CPU (to try the script
# itself: nothing it measures there is a GPU number).
set -u
cd "$(dirname "$0")/.." || exit 1

OUT=${OUT:-results/bench/gpu_check}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
LOG=$OUT/gpu_check.log
: >"$LOG"
SCRATCH=$(mktemp -d)
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-470} # seconds for everything, the summary included
RESERVE=15                        # kept back for the summary
DEVICE=${GPU_CHECK_DEVICE:-cuda}
VENV=${GPU_CHECK_VENV:-.venv-gpu}
STAGES=" ${GPU_CHECK_STAGES:-tests train_step to_mse} "
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

say() { echo "$*" | tee -a "$LOG"; }
want() { [[ $STAGES == *" $1 "* ]]; }

# stage NAME LIMIT CMD...: run CMD under `timeout`, for at most LIMIT seconds and the time left;
# its output goes to the terminal, the log and $SCRATCH/NAME.out; the status goes to stages.tsv.
stage() {
    local name=$1 limit=$2 left status
    shift 2
    left=$((START + BUDGET - RESERVE - $(date +%s)))
    ((left < limit)) && limit=$left
    if ((limit < 10)); then
        printf '%s\tskipped (time budget spent)\t0\n' "$name" >>"$SCRATCH/stages.tsv"
        say "=== $name: skipped, time budget spent"
        return
    fi
    say "=== $name (at most ${limit} s): $*"
    local t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" "$SCRATCH/$name.out"
    local rc=${PIPESTATUS[0]} seconds=$(($(date +%s) - t0))
    case $rc in
    0) status=ok ;;
    124 | 137) status="timed out after ${limit} s (time budget, not a failure)" ;;
    *) status="failed (exit $rc)" ;;
    esac
    printf '%s\t%s\t%s\n' "$name" "$status" "$seconds" >>"$SCRATCH/stages.tsv"
    say "=== $name: $status, ${seconds} s"
}

# usable PY: prints what PY has, or what it lacks (then fails)
usable() {
    "$1" - "$DEVICE" <<'EOF' 2>&1
import sys
try:  # the library's deepest modules import every dependency the stages need
    import affine_icl.activations, affine_icl.figures, affine_icl.train, pytest, snakemake, torch
except ImportError as error:
    sys.exit(f"cannot import {error.name or error}")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA")
name = torch.cuda.get_device_name() if sys.argv[1] == "cuda" else "cpu"
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), {name}")
EOF
}

# ---------------------------------------------------------------- env
say "gpu_check: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)
gpu_rc=$?
say "nvidia-smi: $gpu"
if [ "$DEVICE" = cuda ] && [ $gpu_rc -ne 0 ]; then
    say "no NVIDIA GPU visible (nvidia-smi failed): nothing to measure"
    printf 'env\tno GPU visible\t0\n' >>"$SCRATCH/stages.tsv"
else
    PY=""
    for candidate in ${PYTHON:-} .venv/bin/python "$VENV/bin/python" python3; do
        [ -x "$candidate" ] || command -v "$candidate" >/dev/null || continue
        if found=$(usable "$candidate"); then
            PY=$candidate && say "python: $PY: $found" && break
        fi
        say "python: $candidate not usable: $found"
    done
    if [ -z "$PY" ] && compgen -G ".whl/*.whl" >/dev/null; then
        # no registry reachable, the wheels carried as .whl (bash bench/gpu_wheels.sh): installed
        # as /work/.library/device/README.md says; the project itself comes from PYTHONPATH
        pip_line="python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir"
        stage wheels 120 bash -c "exec $pip_line --upgrade --target /tmp/site .whl/*.whl"
        python3 -m compileall -q -j 0 /tmp/site >/dev/null 2>&1 # once, not per process
        export PYTHONPATH=$PYTHONPATH:/tmp/site
        # to the log only: what the image and the wheels miss (wandb is left out on purpose)
        { echo "pip check:" && python3 -m pip check; } >>"$LOG" 2>&1
        if found=$(usable python3); then
            PY=python3 && say "python: $PY with the wheels in .whl: $found"
        else # a venv would see the same packages and reach no registry either
            say "python: python3 with the wheels in .whl still not usable: $found"
        fi
    elif [ -z "$PY" ]; then
        python3 -m venv --system-site-packages "$VENV" 2>&1 | tee -a "$LOG"
        # offline (no registry reachable): the wheels in $GPU_CHECK_WHEELS, and the project
        # without its linters (pytest must be there already)
        install=(-e '.[test]')
        [ -n "${GPU_CHECK_WHEELS:-}" ] &&
            install=(--no-index --find-links "$GPU_CHECK_WHEELS" --no-build-isolation -e .)
        stage install 240 "$VENV/bin/python" -m pip install "${install[@]}"
        if found=$(usable "$VENV/bin/python"); then
            PY=$VENV/bin/python && say "python: $PY: $found"
        else
            say "python: $VENV/bin/python still not usable: $found"
        fi
    fi
    [ -n "$PY" ] && env_status="ok: $PY, $found" || env_status="no usable Python (see the log)"
    printf 'env\t%s\t%s\n' "$env_status" "$(($(date +%s) - START))" >>"$SCRATCH/stages.tsv"
fi

# ---------------------------------------------------------------- measurements
if [ -n "${PY:-}" ]; then
    want tests && stage tests 150 "$PY" -m pytest -q -rs -p no:cacheprovider \
        tests/test_stacked.py -k "cuda or recording or replay"
    want train_step && stage train_step 150 "$PY" bench/train_step.py --device "$DEVICE" \
        --seeds 8 --compiled --json "$OUT/train_step.json"
    if want to_mse; then # it stops itself 30 s before the stage's limit, to report how far it got
        left=$((START + BUDGET - RESERVE - $(date +%s)))
        limit=$((left < 150 ? left : 150))
        stage to_mse "$limit" "$PY" bench/train_step.py --device "$DEVICE" --no-timing \
            --to-mse 1e-4 --max-seconds $((limit > 60 ? limit - 30 : limit / 2)) \
            --json "$OUT/to_mse.json"
    fi
fi

# ---------------------------------------------------------------- summary
python3 - "$SCRATCH" "$OUT" "$START" "$BUDGET" <<'EOF' | tee -a "$LOG"
import json, re, sys, time
from pathlib import Path

scratch, out, start, budget = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
stages = {}
for line in (scratch / "stages.tsv").read_text().splitlines():
    name, status, seconds = line.split("\t")
    stages[name] = {"status": status, "seconds": int(seconds)}


def output(name):
    path = scratch / f"{name}.out"
    return path.read_text(errors="replace") if path.exists() else ""


def last(pattern, text):
    found = re.findall(pattern, text, flags=re.M)
    return found[-1].strip() if found else None


def read(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return None


measured = {}
if "tests" in stages:
    measured["tests"] = last(r"^.*\b(?:passed|failed|error|skipped|deselected)\b.*$", output("tests"))
bench = read("train_step.json")
if bench and "ms_per_step" in bench:
    measured["ms_per_step"] = {k: round(v, 3) for k, v in bench["ms_per_step"].items()}
    measured["ops_per_step"] = bench.get("ops_per_step")
    measured["warmup_s"] = {k: round(v, 1) for k, v in bench.get("warmup_s", {}).items()}
    measured["steps_ran_as"] = bench.get("steps_ran_as")
    measured["device_name"] = bench.get("device_name")
to_mse = (read("to_mse.json") or {}).get("to_mse")
if to_mse:
    measured["to_mse"] = {k: to_mse[k] for k in ("target", "reached", "steps", "seconds",
                                                 "heldout_mse", "steps_ran_as")}
elif last(r"^\s*step \d+: held-out MSE .*$", output("to_mse")):
    measured["to_mse"] = "stopped at " + last(r"^\s*step \d+: held-out MSE .*$", output("to_mse"))

total = int(time.time()) - start
summary = {"stages": stages, "measured": measured, "total_s": total, "budget_s": int(budget)}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
lines = ["", "gpu_check summary", f"{'stage':<12}{'seconds':>8}  status"]
lines += [f"{n:<12}{s['seconds']:>8}  {s['status']}" for n, s in stages.items()]
lines.append("measured:")
for key, value in measured.items():
    lines.append(f"  {key}: {json.dumps(value) if not isinstance(value, str) else value}")
lines.append(f"total {total} s (budget {budget} s); logs and JSON in {out}")
(out / "summary.txt").write_text("\n".join(lines[1:]) + "\n")
print("\n".join(lines))
EOF
rm -rf "$SCRATCH"
