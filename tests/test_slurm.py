"""A tiny sweep through workflow/profiles/slurm on a real single-node Slurm: two depths x two
seeds (tests/config/tiny_sweep.yaml), one batched training job per depth, one job per run for
all its analyses.

`.ci/slurm-up.sh` (root, apt-get) starts munged, slurmctld and slurmd on localhost with two fake
GPUs, configured in /etc/slurm/slurm.conf. Where Slurm is not running the test skips and says why
(the reason the start script wrote to $SLURM_TEST_STATE/unavailable, if any).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIGURES, REPO, copy_workflow

STATE = Path(os.environ.get("SLURM_TEST_STATE", "/tmp/affine-slurm"))
CONF = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
# Flags for a Slurm without an accounting database (see ../shared/SLURM-NOTES.md): without
# them the plugin's sacct-based status check waits forever.
TEST_FLAGS = [
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--slurm-keep-successful-logs",
]


def unavailable() -> str | None:
    """Why the local Slurm cannot be used, or None."""
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
    if (STATE / "unavailable").exists():
        reason = (STATE / "unavailable").read_text().strip()
        return f"no local Slurm: {reason} (.ci/slurm-up.sh, needs root and apt-get)"
    if not CONF.is_file():
        return "no local Slurm: not started; start one with .ci/slurm-up.sh (root, apt-get)"
    if shutil.which("sinfo") is None:
        return "no sinfo on PATH"
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], check=False, capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"sinfo failed: {proc.stderr.strip() or 'no nodes'}"
    return None


RUNS = [f"n_layers{n}-s{seed}" for n in (2, 3) for seed in (7, 8)]

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm")
    work = copy_workflow(root)
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--workflow-profile",
        str(root / "workflow" / "profiles" / "slurm"),
        "--snakefile",
        str(root / "workflow" / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(REPO / "tests" / "config" / "tiny.yaml"),
        str(REPO / "tests" / "config" / "tiny_sweep.yaml"),
        "--config",
        "device=auto",
        "--verbose",
        "--jobs",
        "4",
        *TEST_FLAGS,
        # every run's whole DAG but the across-runs rules
        *(f"results/runs/{run}/claims.md" for run in RUNS),
        *(f"results/runs/{run}/figures/{f}.png" for run in RUNS for f in FIGURES),
        *(f"results/models/{run}/README.md" for run in RUNS),
    ]
    proc = subprocess.run(["timeout", "1500", *cmd], check=False, capture_output=True, text=True)
    (root / "snakemake.out").write_text(proc.stdout + proc.stderr)
    return proc, work


def sbatch_calls(output: str) -> dict[str, str]:
    """The sbatch command of every Slurm job the plugin submitted, by its --comment
    (``rule_<rule>[_wildcards_...]``, or ``rule_<group id>_<its rules>`` for a group job)."""
    calls = {}
    for line in output.splitlines():
        if "sbatch " in line and "--job-name" in line:
            match = re.search(r"--comment '?([^' ]+)", line)
            calls[match[1] if match else "?"] = line
    return calls


def test_the_sweep_completes_through_the_slurm_profile(slurm_run):
    proc, work = slurm_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    for run in RUNS:
        assert (work / f"results/runs/{run}/claims.md").is_file()
        assert (work / f"results/runs/{run}/figures/fig18_attention_example.png").is_file()
        assert (work / f"results/models/{run}/README.md").is_file()


def test_one_training_job_per_batch_group_and_one_analysis_job_per_run(slurm_run):
    proc, _ = slurm_run
    calls = sbatch_calls(proc.stdout + proc.stderr)
    training = {c: line for c, line in calls.items() if c.startswith("rule_train")}
    analyses = {c: line for c, line in calls.items() if "analysis_" in c}
    assert sorted(training) == [
        "rule_train_n_layers2_s7_n_layers2_s8",
        "rule_train_n_layers3_s7_n_layers3_s8",
    ], sorted(calls)
    # a group job's comment: rule_analysis_<run>_<its rules>
    assert sorted(run for run in RUNS for c in analyses if f"analysis_{run}_" in c) == RUNS
    assert len(analyses) == len(RUNS)
    # nothing else but the shared evaluation population: no job per figure or claim
    assert sorted(set(calls) - set(training) - set(analyses)) == ["rule_generate_data"]


def test_training_asked_for_a_gpu_and_other_jobs_did_not(slurm_run):
    proc, _ = slurm_run
    calls = sbatch_calls(proc.stdout + proc.stderr)
    for comment, line in calls.items():
        if comment.startswith("rule_train"):
            assert "--gpus=1" in line and "--cpus-per-gpu=1" in line, line
        else:
            assert "--gpus" not in line and "--gres" not in line, line


def test_every_job_asks_for_the_resources_its_rules_have_in_config(slurm_run):
    """tiny_sweep.yaml: training 1000 MB (tiny.yaml), analyses 1100 MB and 2 min, the cache and
    the claims over training 2900 MB and 3 min, every analysis rule on one of the group job's
    two CPUs. A group job asks for the most memory it uses at once and its layers' runtimes
    added up."""
    proc, _ = slurm_run
    calls = sbatch_calls(proc.stdout + proc.stderr)
    for comment, line in calls.items():
        mem = int(re.search(r"--mem (\d+)", line)[1])
        minutes = int(re.search(r" -t '?(\d+)", line)[1])
        if comment.startswith("rule_train"):
            assert (mem, minutes) == (1000, 10), line
        elif "analysis_" in comment:
            # a 2900 MB rule beside an 1100 MB one (one thread each, two at once), as computed
            # by Snakemake's layering of the group
            assert mem == 4000, line
            # the cache and the claims over training, the other ~25 rules two at a time
            assert 3 + 3 + 2 * 10 <= minutes <= 3 + 3 + 2 * 30, line
        else:
            assert (mem, minutes) == (1100, 2), line  # generate_data: resources.default


def test_training_ran_with_slurms_cuda_visible_devices_and_fell_back_to_cpu(slurm_run):
    _, work = slurm_run
    log = (work / "results/logs/train/n_layers2-s7+n_layers2-s8.log").read_text()
    assert re.search(
        r"CUDA_VISIBLE_DEVICES=\d+ is set but CUDA is not usable here; "
        r"falling back to the CPU",
        log,
    ), log[-2000:]
    assert re.search(r"device: cpu \(config device: auto, CUDA_VISIBLE_DEVICES=\d+\)", log)
