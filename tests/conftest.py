from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from affine_icl.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from affine_icl.figures.registry import figures

REPO = Path(__file__).resolve().parent.parent
#: every per-run figure rule (and file name) of the paper (affine_icl/figures/registry.py)
FIGURES = [figure.rule for figure in figures("run") if figure.in_paper]


def copy_workflow(root: Path) -> Path:
    """Copy what a Snakemake run needs (workflow, scripts, envs, config.yaml, and the library,
    which runs from the copy with ``PYTHONPATH=root``) under ``root``, so a test can edit a
    script or a module without touching the repository; returns ``root/work`` (empty)."""
    for part in ("workflow", "scripts", "envs"):
        shutil.copytree(REPO / part, root / part)
    shutil.copytree(
        REPO / "affine_icl", root / "affine_icl", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "config.yaml", root / "config.yaml")
    (root / "work").mkdir()
    return root / "work"


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture
def tiny_model_cfg() -> ModelConfig:
    return ModelConfig(d_vocab=6, d_model=32, d_head=8, n_heads=4, d_mlp=64, n_layers=3, n_ctx=16)


def tiny_cfg() -> RunConfig:
    """A small run that trains in seconds; same protocol as the paper otherwise."""
    data = DataConfig(vector_dim=6, length_range=(3, 8), eval_per_length=16)
    model = ModelConfig(d_vocab=6, d_model=32, d_head=8, n_heads=4, d_mlp=64, n_layers=2, n_ctx=16)
    train = TrainConfig(
        steps=60,
        lr=1e-3,
        log_every=10,
        eval_every=20,
        eval_per_length=16,
        checkpoint_every=20,
        seed=3,
    )
    return RunConfig(data=data, model=model, train=train)


@pytest.fixture
def tiny_run_cfg() -> RunConfig:
    return tiny_cfg()


def with_train(cfg: RunConfig, **changes) -> RunConfig:
    return replace(cfg, train=replace(cfg.train, **changes))


_BAD_INPUTS: list[str] = []


def record_bad_input(name: str) -> None:
    """Count a bad-input case that was tried and rejected properly (see test_reliability.py)."""
    _BAD_INPUTS.append(name)


def pytest_terminal_summary(terminalreporter):
    if _BAD_INPUTS:
        terminalreporter.write_line(
            f"bad-input cases rejected with a one-line error: {len(_BAD_INPUTS)}"
        )


def dry_run(directory: Path, *args: str) -> str:
    """``snakemake -n`` of the repository's workflow in ``directory``: its whole output.
    Raises with the output's tail when Snakemake fails."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--snakefile",
            str(REPO / "workflow/Snakefile"),
            "--directory",
            str(directory),
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n {' '.join(args)} failed:\n{out[-3000:]}")
    return out
