"""Training protocol, resumption after a crash, divergence detection and outputs."""

import io
import re
import shutil

import pandas as pd
import pytest
import torch
from conftest import with_train
from safetensors.torch import load_file

from affine_icl.checkpoints import (
    CheckpointError,
    checkpoint_dir,
    latest_checkpoint,
    snapshot_dir,
    snapshot_name,
    snapshot_step,
    snapshot_steps,
)
from affine_icl.data import batches_from_table, population_table
from affine_icl.model import load_model, read_metadata
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


def crashed_at_21(cfg, eval_batches, root):
    """Train ``cfg`` under ``root`` until a crash at step 21: its newest checkpoint is step 20's."""
    with pytest.raises(Crash):
        train(cfg, eval_batches, checkpoint_root=root, progress=False, on_step=crash_at(21))
    return latest_checkpoint(checkpoint_dir(root, cfg))


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
    src = crashed_at_21(tiny_run_cfg, eval_batches, tmp_path)
    other = with_train(tiny_run_cfg, lr=5e-4)
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
    assert re.search(r"held-out MSE \d\.\d\de-\d\d \| [\d.]+ steps/s, 0m00s left$", lines[-1])
    # between evaluations the line says when the held-out MSE it repeats was measured
    assert re.search(r"held-out MSE \d\.\d\de-\d\d \(step 100\) \|", lines[10])
    assert "(step" not in lines[9]  # step 100 itself: measured now
    assert [int(re.search(r"step (\d+)/", line).group(1)) for line in lines] == list(
        range(10, 201, 10)
    )


def same_file_contents(a, b) -> bool:
    """Same tensors (bitwise) and metadata; the header's key order may differ between writes."""
    ta, tb = load_file(str(a)), load_file(str(b))
    same = ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    return same and read_metadata(a) == read_metadata(b)


def test_snapshot_schedule():
    assert snapshot_steps(100_000, 10_000) == list(range(10_000, 100_001, 10_000))
    assert snapshot_steps(95, 30) == [30, 60, 90]  # the final step only when on the schedule
    assert snapshot_steps(100, 0) == []
    assert snapshot_step(snapshot_name(1234)) == 1234


def test_snapshots_are_the_weights_at_their_step_and_survive_a_resume(
    tiny_run_cfg, eval_batches, tmp_path
):
    """A snapshot holds what a run trained to that step ends with; a run killed after one
    snapshot and resumed from the checkpoint before it writes the same bits again."""
    cfg = with_train(tiny_run_cfg, steps=60, checkpoint_every=20, snapshot_every=30)
    full = train(cfg, eval_batches, checkpoint_root=tmp_path / "a", progress=False)
    assert sorted(full.snapshots) == [30, 60] and full.missing_snapshots() == []
    to_30 = train(with_train(cfg, steps=30), eval_batches, progress=False)
    snap = load_model(full.snapshots[30])
    for (name, a), b in zip(
        snap.state_dict().items(), to_30.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert read_metadata(full.snapshots[30])["config_hash"] == cfg.hash()

    root = tmp_path / "b"
    with pytest.raises(Crash):  # after snapshot 30 and checkpoint 20, before checkpoint 40
        train(cfg, eval_batches, checkpoint_root=root, progress=False, on_step=crash_at(35))
    assert [p.name for p in sorted(snapshot_dir(root, cfg).iterdir())] == [snapshot_name(30)]
    resumed = train(cfg, eval_batches, checkpoint_root=root, progress=False)
    assert sorted(resumed.snapshots) == [30, 60]
    for step in (30, 60):
        assert same_file_contents(resumed.snapshots[step], full.snapshots[step])


def test_snapshots_go_to_the_outputs_and_missing_ones_are_named(
    tiny_run_cfg, eval_batches, tmp_path
):
    cfg = with_train(tiny_run_cfg, steps=40, checkpoint_every=20, snapshot_every=20)
    # checkpoints written before snapshots were kept: the resumed run has only the later ones
    with pytest.raises(Crash):
        train(
            with_train(cfg, snapshot_every=0),
            eval_batches,
            checkpoint_root=tmp_path,
            progress=False,
            on_step=crash_at(25),
        )
    result = train(cfg, eval_batches, checkpoint_root=tmp_path, progress=False)
    assert sorted(result.snapshots) == [40] and result.missing_snapshots() == [20]
    out = tmp_path / "out"
    paths = out / "w.safetensors", out / "opt.pt", out / "log.parquet", out / "snapshots"
    save_outputs(result, *paths)
    assert [p.name for p in paths[3].iterdir()] == [snapshot_name(40)]
    assert same_file_contents(paths[3] / snapshot_name(40), result.snapshots[40])


def test_batched_runs_keep_their_own_snapshots(tiny_run_cfg, eval_batches, tmp_path):
    cfgs = [with_train(tiny_run_cfg, steps=40, snapshot_every=20, seed=s) for s in (3, 4)]
    roots = [tmp_path / "3", tmp_path / "4"]
    results = train_runs(cfgs, eval_batches, checkpoint_roots=roots, progress=False)
    for cfg, root, result in zip(cfgs, roots, results, strict=True):
        assert sorted(result.snapshots) == [20, 40]
        assert result.snapshots[20].parent == snapshot_dir(root, cfg)
        final = load_model(result.snapshots[40]).state_dict()
        for name, value in result.model.state_dict().items():
            assert torch.equal(final[name], value), name


def test_a_longer_run_continues_from_a_shorter_ones_end_to_the_same_weights(
    tiny_run_cfg, eval_batches, tmp_path
):
    """train.steps keys no checkpoint (the trajectory does): 30 steps then 60 gives the weights
    of 60 uninterrupted steps, and a 30-step run afterwards finds its end again."""
    short = with_train(tiny_run_cfg, steps=30)
    assert short.trajectory_hash() == tiny_run_cfg.trajectory_hash()
    assert short.hash() != tiny_run_cfg.hash()
    uninterrupted = train(tiny_run_cfg, eval_batches, progress=False)
    first = train(short, eval_batches, checkpoint_root=tmp_path, progress=False)
    assert first.step == 30
    taken = []
    longer = train(
        tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False, on_step=taken.append
    )
    assert taken[0] == 31 and longer.step == 60  # continued, not started again
    for name, value in uninterrupted.model.state_dict().items():
        assert torch.equal(value, longer.model.state_dict()[name]), name
    # both ends are kept; the shorter run finds its own and trains nothing
    ends = sorted(p.name for p in checkpoint_dir(tmp_path, short).glob("step-*"))
    assert ends == ["step-000000030", "step-000000060"]
    again = train(
        short, eval_batches, checkpoint_root=tmp_path, progress=False, on_step=taken.append
    )
    assert again.step == 30 and len(taken) == 30
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name]), name


def test_a_damaged_checkpoint_is_refused_naming_the_file_and_what_is_wrong(
    tiny_run_cfg, eval_batches, tmp_path
):
    path = crashed_at_21(tiny_run_cfg, eval_batches, tmp_path)
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # one bit of a tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model.safetensors does not match its checksum"):
        train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("nan_weight", r"weight embed.W_E has 1 non-finite entries"),
        ("negative_moment", r"AdamW exp_avg_sq of embed.W_E has negative entries"),
        ("missing_moment", r"has no AdamW exp_avg for embed.W_E"),
    ],
)
def test_a_checkpoint_with_bad_tensors_is_refused_before_training_resumes(
    tiny_run_cfg, eval_batches, tmp_path, damage, message
):
    """Finite and complete, checked on resume (a checksum only says the file is as written)."""
    from affine_icl import checkpoints

    path = crashed_at_21(tiny_run_cfg, eval_batches, tmp_path)
    weights = load_file(str(path / "model.safetensors"))
    state = torch.load(path / "state.pt", weights_only=True)
    if damage == "nan_weight":
        weights["embed.W_E"][0, 0] = float("nan")
    elif damage == "negative_moment":
        state["optimizer"]["exp_avg_sq"]["embed.W_E"][0, 0] = -1.0
    else:
        del state["optimizer"]["exp_avg"]["embed.W_E"]
    shutil.rmtree(path)
    extra = {k: v for k, v in state.items() if k not in ("trajectory_hash", "step")}
    checkpoints.write_checkpoint(path.parent, tiny_run_cfg, 20, weights, extra)
    with pytest.raises(CheckpointError, match=rf"checkpoint {path}: .*{message}|{message}"):
        train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False)


def test_an_empty_newer_checkpoint_says_deleting_it_resumes_from_the_one_before(
    tiny_run_cfg, eval_batches, tmp_path
):
    crashed_at_21(tiny_run_cfg, eval_batches, tmp_path)
    empty = checkpoint_dir(tmp_path, tiny_run_cfg) / "step-000000030"
    empty.mkdir()
    with pytest.raises(
        CheckpointError, match=rf"delete {empty} to resume from the checkpoint before"
    ):
        train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False)
    empty.rmdir()
    assert train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False).step == 60


def test_a_failed_checkpoint_write_says_why_and_leaves_no_partial_checkpoint(
    tiny_run_cfg, tmp_path, monkeypatch
):
    import errno

    from affine_icl import checkpoints

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    weights = {"x": torch.zeros(2)}
    with pytest.raises(CheckpointError, match=r"step 5 .*no space left on the device .*MB free"):
        checkpoints.write_checkpoint(tmp_path, tiny_run_cfg, 5, weights, {})
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_a_second_trainer_of_the_same_run_stops_at_once_naming_the_holder(
    tiny_run_cfg, eval_batches, tmp_path
):
    """After kill -9 of Snakemake its training job went on, and a rerun wrote the same
    checkpoints beside it for minutes."""
    from affine_icl.checkpoints import locked

    directory = checkpoint_dir(tmp_path, tiny_run_cfg)
    with locked([directory]):
        with pytest.raises(CheckpointError, match=rf"{directory} is in use by training process"):
            train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False)
    # released with its holder: the run trains
    assert train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False).step == 60


def test_leftovers_of_a_killed_checkpoint_write_are_removed_when_training_starts(
    tiny_run_cfg, eval_batches, tmp_path
):
    directory = checkpoint_dir(tmp_path, tiny_run_cfg)
    (directory / ".tmp-step-000000040-99999").mkdir(parents=True)
    (directory / "snapshots").mkdir()
    (directory / "snapshots" / ".tmp-step-000000040.safetensors-99999").write_bytes(b"x")
    train(tiny_run_cfg, eval_batches, checkpoint_root=tmp_path, progress=False)
    assert not list(directory.glob(".tmp-*"))
    assert not list((directory / "snapshots").glob(".tmp-*"))


def test_a_resumed_run_says_so_in_the_terminal(tiny_run_cfg, eval_batches, tmp_path):
    with pytest.raises(Crash):
        train(
            tiny_run_cfg,
            eval_batches,
            checkpoint_root=tmp_path,
            progress=False,
            on_step=crash_at(25),
        )
    status = io.StringIO()
    train_runs(
        [tiny_run_cfg],
        eval_batches,
        checkpoint_roots=[tmp_path],
        progress=False,
        status=status,
        label="tiny",
    )
    assert status.getvalue().startswith("train tiny: resumed from step 20 of 60 (checkpoints under")


def test_a_stopped_job_says_so_in_one_line_without_a_traceback(tmp_path, capsys):
    """Ctrl-C printed the same message three times with a traceback and a log dump."""
    from affine_icl.rules import rule_log
    from affine_icl.train import TrainingInterrupted

    log = tmp_path / "train.log"
    with pytest.raises(SystemExit) as info, rule_log(log):
        raise TrainingInterrupted(
            "SIGINT received: training stopped at step 7 of 60; rerun to resume"
        )
    assert info.value.code == 1
    text = log.read_text()
    assert "SIGINT received: training stopped at step 7" in text and "Traceback" not in text
    assert text.count("SIGINT received") == 1
