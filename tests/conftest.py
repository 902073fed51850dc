from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from affine_icl.config import DataConfig, ModelConfig, RunConfig, TrainConfig

REPO = Path(__file__).resolve().parent.parent


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
    train = TrainConfig(steps=60, lr=1e-3, log_every=10, eval_every=20, eval_per_length=16,
                        checkpoint_every=20, seed=3)
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
            f"bad-input cases rejected with a one-line error: {len(_BAD_INPUTS)}")
