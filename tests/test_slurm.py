"""The tiny DAG through workflow/profiles/slurm on a real single-node Slurm.

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
        "--config",
        "device=auto",
        "--verbose",
        "--jobs",
        "4",
        *TEST_FLAGS,
        # one run's whole DAG (tiny.yaml has two runs)
        "results/runs/tiny/claims.md",
        *(f"results/runs/tiny/figures/{f}.png" for f in FIGURES),
    ]
    proc = subprocess.run(["timeout", "1500", *cmd], check=False, capture_output=True, text=True)
    (root / "snakemake.out").write_text(proc.stdout + proc.stderr)
    return proc, work


def sbatch_lines(output: str) -> dict[str, str]:
    """The sbatch command the plugin built, by rule name."""
    lines = {}
    for line in output.splitlines():
        if "sbatch " in line and "--job-name" in line:
            match = re.search(r"rule_(\w+?)_wildcards|rule_(\w+)", line)
            name = next(g for g in match.groups() if g) if match else "?"
            lines[name] = line
    return lines


def test_tiny_dag_completes_through_the_slurm_profile(slurm_run):
    proc, work = slurm_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert (work / "results/runs/tiny/claims.md").is_file()
    assert (work / "results/runs/tiny/figures/fig18_attention_example.png").is_file()


def test_training_asked_for_a_gpu_and_other_rules_did_not(slurm_run):
    proc, _ = slurm_run
    lines = sbatch_lines(proc.stdout + proc.stderr)
    assert "train" in lines, sorted(lines)
    assert "--gpus=1" in lines["train"] and "--cpus-per-gpu=2" in lines["train"]
    for rule in ("generate_data", "cache_activations", "fig08_layer0_ov", "claims"):
        assert rule in lines, sorted(lines)
        assert "--gpus" not in lines[rule] and "--gres" not in lines[rule], lines[rule]


def test_training_ran_with_slurms_cuda_visible_devices_and_fell_back_to_cpu(slurm_run):
    _, work = slurm_run
    log = (work / "results/logs/train/tiny.log").read_text()
    assert re.search(
        r"CUDA_VISIBLE_DEVICES=\d+ is set but CUDA is not usable here; "
        r"falling back to the CPU",
        log,
    ), log[-2000:]
    assert re.search(r"device: cpu \(config device: auto, CUDA_VISIBLE_DEVICES=\d+\)", log)
