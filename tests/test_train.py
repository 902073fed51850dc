"""Training protocol, resumption after a crash, divergence detection and outputs."""

import io
import re
import shutil

import pandas as pd
import pytest
import torch
from conftest import with_train

from affine_icl.checkpoints import CheckpointError, checkpoint_dir, latest_checkpoint
from affine_icl.data import batches_from_table, population_table
from affine_icl.model import load_model
from affine_icl.stacked import masked_mse
from affine_icl.train import Trainer, TrainingDiverged, save_outputs, train, train_runs


@pytest.fixture
def eval_batches(tiny_run_cfg):
    return batches_from_table(population_table(tiny_run_cfg.data))


class Crash(Exception):
    pass


def crash_at(step):
    def hook(s):
        if s == step:
            raise Crash(s)

    return hook


def test_masked_mse_ignores_early_positions():
    pred, target = torch.zeros(2, 5, 3), torch.zeros(2, 5, 3)
    target[:, :2] = 100.0  # positions 0, 1 are unpredictable and excluded
    assert masked_mse(pred, target, 2) == 0
    target[:, 2] = 1.0
    assert masked_mse(pred, target, 2) == pytest.approx(1 / 3)


def test_a_few_hundred_steps_lower_the_loss(tiny_run_cfg, eval_batches):
    cfg = with_train(tiny_run_cfg, steps=300, eval_every=100, log_every=20, checkpoint_every=100)
    state = train(cfg, eval_batches, progress=False)
    log = pd.DataFrame(state.log)
    assert list(log["step"]) == list(range(20, 301, 20))
    assert log["train_loss"].iloc[-1] < 0.5 * log["train_loss"].iloc[0]
    held = log["heldout_mse"].dropna()
    assert list(held.index + 1) == [5, 10, 15]
    assert held.iloc[-1] < held.iloc[0]


def test_killed_run_resumes_to_identical_weights(tiny_run_cfg, eval_batches, tmp_path):
    full = train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path / "a", progress=False)
    root = tmp_path / "b"
    with pytest.raises(Crash):  # dies between checkpoints 40 and 60
        train(
            tiny_run_cfg, eval_batches, checkpoint_root=root, progress=False, on_step=crash_at(47)
        )
    assert latest_checkpoint(checkpoint_dir(root, tiny_run_cfg)).name == "step-000000040"
    steps_seen = []
    resumed = train(
        tiny_run_cfg, eval_batches, checkpoint_root=root, progress=False, on_step=steps_seen.append
    )
    assert steps_seen[0] == 41  # resumed, did not restart
    for (name, a), b in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    drop = ["elapsed_s"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(full.log).drop(columns=drop), pd.DataFrame(resumed.log).drop(columns=drop)
    )


def test_same_seed_same_weights_other_seed_other_weights(tiny_run_cfg, eval_batches):
    cfg = with_train(tiny_run_cfg, steps=20)
    a = train(cfg, eval_batches, progress=False).model.state_dict()
    b = train(cfg, eval_batches, progress=False).model.state_dict()
    c = train(with_train(cfg, seed=4), eval_batches, progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["embed.W_E"], c["embed.W_E"])


def test_nan_loss_stops_training_naming_the_step(tiny_run_cfg, eval_batches, tmp_path):
    trainer = Trainer([tiny_run_cfg])

    def poison(step):
        if step == 25:
            with torch.no_grad():
                trainer.params["unembed.b_U"].fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 26 \(run seed 3"):
        trainer.run(eval_batches, checkpoint_roots=[tmp_path], progress=False, on_step=poison)
    # the last checkpoint is the good one from step 20, not a poisoned one
    assert latest_checkpoint(checkpoint_dir(tmp_path, tiny_run_cfg)).name == "step-000000020"


def test_foreign_or_truncated_checkpoint_is_refused(tiny_run_cfg, eval_batches, tmp_path):
    with pytest.raises(Crash):
        train(
            tiny_run_cfg,
            eval_batches,
            checkpoint_root=tmp_path,
            progress=False,
            on_step=crash_at(21),
        )
    other = with_train(tiny_run_cfg, lr=5e-4)
    src = latest_checkpoint(checkpoint_dir(tmp_path, tiny_run_cfg))
    dst = checkpoint_dir(tmp_path, other) / src.name
    shutil.copytree(src, dst)
    with pytest.raises(CheckpointError, match=rf"checkpoint {dst} was written by config .*delete"):
        train(other, eval_batches, checkpoint_root=tmp_path, progress=False)
    (src / "state.pt").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match=rf"checkpoint {src} is unreadable"):
        train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False)


def test_outputs_are_safetensors_optimizer_state_and_parquet_log(
    tiny_run_cfg, eval_batches, tmp_path
):
    state = train(tiny_run_cfg, eval_batches, progress=False)
    paths = tmp_path / "w.safetensors", tmp_path / "opt.pt", tmp_path / "log.parquet"
    save_outputs(state, *paths)
    model = load_model(paths[0])
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), state.model.state_dict().values(), strict=True)
    )
    opt = torch.load(paths[1], weights_only=True)
    assert set(opt) == {"step", "exp_avg", "exp_avg_sq", "hyperparameters"}
    assert opt["step"] == tiny_run_cfg.train.steps and opt["hyperparameters"]["lr"] == 1e-3
    assert set(opt["exp_avg"]) == set(model.state_dict())
    log = pd.read_parquet(paths[2])
    assert list(log.columns) == ["step", "train_loss", "heldout_mse", "elapsed_s"]
    assert log["step"].iloc[-1] == tiny_run_cfg.train.steps


def test_auto_device_falls_back_to_cpu_and_says_so(monkeypatch, caplog):
    from affine_icl.train import resolve_device

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level("INFO", logger="affine_icl"):
        assert resolve_device("auto") == torch.device("cpu")
    assert (
        "CUDA_VISIBLE_DEVICES=0 is set but CUDA is not usable here; falling back to the CPU"
        in caplog.text
    )
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")


def test_collapse_warning_only_when_the_end_is_no_better_than_the_first_evaluation():
    from affine_icl.data import collapse_warning

    nan = float("nan")
    rows = [
        {"step": 10, "heldout_mse": nan},
        {"step": 20, "heldout_mse": 0.5},
        {"step": 30, "heldout_mse": nan},
        {"step": 40, "heldout_mse": 0.1},
    ]
    assert collapse_warning(rows) is None
    rows[-1]["heldout_mse"] = 0.7  # lr too high: worse at the end, and no NaN anywhere
    assert "held-out MSE 0.7 at step 40 is no better than 0.5 at step 20" in collapse_warning(rows)
    assert collapse_warning(rows[:2]) is None  # one evaluation: nothing to compare


def test_the_terminal_gets_a_status_line_every_five_percent(tiny_run_cfg, eval_batches):
    """The bar goes to the rule's log; the terminal needs its own lines, with '-' (not 'nan')
    for the held-out MSE before the first evaluation."""
    cfg = with_train(tiny_run_cfg, steps=200, log_every=5, eval_every=100)
    status = io.StringIO()
    train_runs([cfg], eval_batches, progress=False, status=status, label="tiny")
    lines = status.getvalue().splitlines()
    assert len(lines) == 20
    assert lines[0].startswith("train tiny: step 10/200 (5%) loss ")
    assert "held-out MSE -" in lines[0] and "nan" not in status.getvalue()
    assert re.search(r"held-out MSE \d\.\d\de-\d\d \| \d+ steps/s, 0m00s left$", lines[-1])
    assert [int(re.search(r"step (\d+)/", line).group(1)) for line in lines] == list(
        range(10, 201, 10)
    )
