"""Preemption and crashes of a real training process: SIGTERM checkpoints and exits non-zero
within seconds; SIGKILL loses at most checkpoint_every steps; either way the resumed run ends
with the same weights as an uninterrupted one (bitwise on CPU)."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, tiny_cfg, with_train
from safetensors.torch import load_file

from affine_icl.checkpoints import checkpoint_dir, latest_checkpoint
from affine_icl.data import batches_from_table, population_table
from affine_icl.train import train

RUNNER = """
import sys
import torch
from safetensors.torch import save_file
sys.path.insert(0, "tests")
from conftest import tiny_cfg, with_train
from affine_icl.data import batches_from_table, population_table
from affine_icl.train import train
torch.set_num_threads(1)
cfg = with_train(tiny_cfg(), steps=STEPS, checkpoint_every=100)
state = train(cfg, batches_from_table(population_table(cfg.data)), checkpoint_root=sys.argv[1],
              progress=False, on_step=lambda step: print(step, flush=True))
save_file({k: v.contiguous() for k, v in state.model.state_dict().items()}, sys.argv[2])
"""
STEPS = 700


def start(ckpt_root, out):
    code = RUNNER.replace("STEPS", str(STEPS))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(ckpt_root), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def wait_for_step(proc, step):
    for line in proc.stdout:
        if int(line) >= step:
            return int(line)
    raise AssertionError(f"runner ended before step {step}: {proc.stderr.read()[-2000:]}")


@pytest.fixture(scope="module")
def tiny_run_cfg_module():
    return with_train(tiny_cfg(), steps=STEPS, checkpoint_every=100)


@pytest.fixture(scope="module")
def reference(tiny_run_cfg_module):
    """Weights of an uninterrupted run, one thread like the runner (thread counts can change
    the order of float reductions)."""
    cfg = tiny_run_cfg_module
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        state = train(cfg, batches_from_table(population_table(cfg.data)), progress=False)
    finally:
        torch.set_num_threads(threads)
    return {k: v.clone() for k, v in state.model.state_dict().items()}


def assert_same_weights(path, reference):
    weights = load_file(str(path))
    assert weights.keys() == reference.keys()
    for name, value in reference.items():
        assert torch.equal(weights[name], value), name


def test_sigterm_checkpoints_and_exits_nonzero_then_resume_is_exact(
    tmp_path, reference, tiny_run_cfg_module
):
    proc = start(tmp_path / "ckpt", tmp_path / "w.safetensors")
    seen = wait_for_step(proc, 250)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert proc.returncode != 0
    assert "SIGTERM received: training stopped at step" in err and "rerun to resume" in err
    stopped = int(
        latest_checkpoint(checkpoint_dir(tmp_path / "ckpt", tiny_run_cfg_module)).name[5:]
    )
    assert seen <= stopped < seen + 20  # the checkpoint is of the step the signal arrived at
    assert stopped % 100 != 0 or stopped == seen
    resumed = start(tmp_path / "ckpt", tmp_path / "w.safetensors")
    first = int(resumed.stdout.readline())
    assert first == stopped + 1
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert_same_weights(tmp_path / "w.safetensors", reference)


def test_sigkill_loses_at_most_one_checkpoint_interval(tmp_path, reference, tiny_run_cfg_module):
    proc = start(tmp_path / "ckpt", tmp_path / "w.safetensors")
    seen = wait_for_step(proc, 350)
    proc.kill()
    proc.wait(timeout=30)
    latest = latest_checkpoint(checkpoint_dir(tmp_path / "ckpt", tiny_run_cfg_module))
    kept = int(latest.name[5:])
    assert seen - kept <= 100 + 20  # checkpoint_every, plus steps printed while dying
    resumed = start(tmp_path / "ckpt", tmp_path / "w.safetensors")
    assert int(resumed.stdout.readline()) == kept + 1
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert_same_weights(tmp_path / "w.safetensors", reference)
