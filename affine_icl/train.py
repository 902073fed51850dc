"""Training with the paper's protocol (section 3.2), resumable from atomic checkpoints.

Each step draws one sequence length uniformly from ``data.length_range`` and a fresh batch of
sequences on the training device, and minimises the MSE between outputs and next terms from
output index ``train.loss_from_index`` on (index 2 predicts ``a_3``, the first term that is
determined by the ones before it). Losses stay on the device between log rows, so a step
never waits for the host.

Checkpoints live in a directory named by the run's config hash, outside the rule's declared
outputs, so Snakemake never deletes them and a changed config never resumes from a stale one.
A rerun after a crash or kill resumes from the newest complete checkpoint; because the model,
optimiser and both random generators are restored, the resumed run ends with the same
weights as an uninterrupted one (bitwise on CPU).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .config import RunConfig
from .data import Batch, sample_batch, sample_length, write_parquet
from .model import VectorTransformer, save_weights


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class CheckpointError(RuntimeError):
    """A checkpoint on disk cannot be used."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT arrived; a checkpoint was written and a rerun resumes from it."""


#: Signals that make training checkpoint and stop: Slurm sends SIGTERM before preemption and at
#: the time limit; SIGINT is Ctrl-C.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _StopRequest:
    """Signal handler that only records which signal arrived; the loop acts on it."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self, signum, frame):
        self.signum = signum


@contextlib.contextmanager
def _stop_requests(signals=STOP_SIGNALS):
    """Catch ``signals`` while training (main thread only; elsewhere nothing is caught)."""
    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.signal(s, request) for s in signals}
    try:
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; any other value is used as given.

    Logs the choice, and says so when a scheduler allocated GPUs (``CUDA_VISIBLE_DEVICES``) that
    CUDA cannot use, so a CPU fallback on a GPU allocation never goes unnoticed.
    """
    log = logging.getLogger("affine_icl")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec == "auto":
        usable = torch.cuda.is_available()
        if visible is not None and not usable:
            log.warning("CUDA_VISIBLE_DEVICES=%s is set but CUDA is not usable here; "
                        "falling back to the CPU", visible)
        device = torch.device("cuda" if usable else "cpu")
    else:
        device = torch.device(spec)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {spec!r} requested but CUDA is not available")
    log.info("device: %s (config device: %s, CUDA_VISIBLE_DEVICES=%s)", device, spec, visible)
    return device


def masked_mse(pred: torch.Tensor, targets: torch.Tensor, loss_from: int) -> torch.Tensor:
    """MSE over output positions ``loss_from..`` (all vector components, all sequences)."""
    return F.mse_loss(pred[:, loss_from:], targets[:, loss_from:])


@torch.no_grad()
def held_out_mse(model: VectorTransformer, batches: dict[int, Batch], loss_from: int) -> float:
    """Mean over lengths of the masked MSE, each length weighted equally (as in training)."""
    was_training = model.training
    model.eval()
    device = model.device
    losses = [
        masked_mse(model(b.inputs.to(device)), b.targets.to(device), loss_from)
        for b in batches.values()
    ]
    model.train(was_training)
    return float(torch.stack(losses).mean())


# --------------------------------------------------------------------------- checkpoints

@dataclass
class TrainState:
    model: VectorTransformer
    optimizer: torch.optim.Optimizer
    data_gen: torch.Generator  # on the training device: sequence contents
    length_gen: torch.Generator  # on the CPU: one length per step
    step: int
    log: list[dict]
    pending: list[float] = field(default_factory=list)  # losses since the last log row


def new_state(cfg: RunConfig, device: torch.device) -> TrainState:
    seed = cfg.train.seed
    init_gen = torch.Generator().manual_seed(seed)
    model = VectorTransformer(cfg.model).init_weights(init_gen).to(device)
    model.set_fused_attention(cfg.train.fused_attention).train()
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=cfg.train.lr,
        betas=cfg.train.betas,
        weight_decay=cfg.train.weight_decay,
        fused=True,
    )
    data_gen = torch.Generator(device=device).manual_seed(seed + 1)
    length_gen = torch.Generator().manual_seed(seed + 2)
    return TrainState(model, optimizer, data_gen, length_gen, step=0, log=[])


def checkpoint_dir(root: Path | str, cfg: RunConfig) -> Path:
    """Where checkpoints of this exact config live: ``root/<config hash>``."""
    return Path(root) / cfg.hash()


def save_checkpoint(state: TrainState, directory: Path, cfg: RunConfig) -> Path:
    """Write ``directory/step-<n>`` atomically (temp dir + rename), then drop older ones."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{state.step:09d}"
    tmp = directory / f".tmp-step-{state.step:09d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    meta = {"config_hash": cfg.hash(), "step": str(state.step)}
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()},
        str(tmp / "model.safetensors"),
        metadata=meta,
    )
    torch.save(
        {
            "config_hash": cfg.hash(),
            "step": state.step,
            "optimizer": state.optimizer.state_dict(),
            "data_gen": state.data_gen.get_state(),
            "length_gen": state.length_gen.get_state(),
            "log": json.dumps(state.log),
            "pending": json.dumps(state.pending),
        },
        tmp / "state.pt",
    )
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in directory.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob("step-*")) if directory.is_dir() else []
    return found[-1] if found else None


def load_checkpoint(state: TrainState, path: Path, cfg: RunConfig) -> TrainState:
    """Restore ``state`` from a checkpoint directory, refusing one of another config."""
    hint = f"delete {path} to restart this run from step 0"
    try:
        extra = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        weights = load_file(str(path / "model.safetensors"), device=str(state.model.device))
    except Exception as exc:  # noqa: BLE001 - truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is unreadable ({exc}); {hint}") from exc
    if extra.get("config_hash") != cfg.hash():
        raise CheckpointError(
            f"checkpoint {path} was written by config {extra.get('config_hash')}, "
            f"not this run's {cfg.hash()}; {hint}"
        )
    state.model.load_state_dict(weights, strict=True)
    state.optimizer.load_state_dict(extra["optimizer"])
    state.data_gen.set_state(extra["data_gen"])
    state.length_gen.set_state(extra["length_gen"])
    state.step = int(extra["step"])
    state.log = json.loads(extra["log"])
    state.pending = json.loads(extra.get("pending", "[]"))
    return state


# --------------------------------------------------------------------------- the loop

def train(
    cfg: RunConfig,
    eval_batches: dict[int, Batch],
    *,
    device: torch.device | str = "cpu",
    checkpoint_root: Path | str | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> TrainState:
    """Train (or resume) one run and return its final state.

    ``checkpoint_root``: where to keep resumable checkpoints (``None``: no checkpoints).
    ``on_step(step)`` is called after every optimizer step; tests use it to simulate a crash.
    Raises :class:`TrainingDiverged` naming the first step whose loss was not finite, and
    :class:`TrainingInterrupted` after SIGTERM/SIGINT, once a checkpoint of the current step
    is written (within one step of the signal).
    """
    device = torch.device(device)
    tc = cfg.train
    state = new_state(cfg, device)
    ckpt_dir = checkpoint_dir(checkpoint_root, cfg) if checkpoint_root is not None else None
    if ckpt_dir is not None and (latest := latest_checkpoint(ckpt_dir)) is not None:
        load_checkpoint(state, latest, cfg)
    model, optimizer = state.model, state.optimizer
    window = torch.zeros(tc.log_every, device=device)  # losses of the current log window
    window[: len(state.pending)] = torch.tensor(state.pending, device=device)
    window_start = state.step + 1 - len(state.pending)
    t0 = time.perf_counter()
    elapsed0 = state.log[-1]["elapsed_s"] if state.log else 0.0
    evals = [r["heldout_mse"] for r in state.log if r["heldout_mse"] == r["heldout_mse"]]
    last_eval = evals[-1] if evals else float("nan")

    def window_losses() -> torch.Tensor:
        """The window so far, after checking that every loss in it is finite."""
        losses = window[: state.step - window_start + 1]
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise TrainingDiverged(
                f"training diverged: loss is {losses[bad].item()} at step {window_start + bad} "
                f"(run seed {tc.seed}, config {cfg.hash()}); no checkpoint was written after it"
            )
        return losses

    bar = tqdm(total=tc.steps, initial=state.step, disable=not progress, unit="step",
               mininterval=5.0, desc=f"train seed={tc.seed}")
    with _stop_requests() as stop:
        while state.step < tc.steps:
            length = sample_length(cfg.data, state.length_gen)
            batch = sample_batch(cfg.data, tc.batch_size, length, state.data_gen)
            loss = masked_mse(model(batch.inputs), batch.targets, tc.loss_from_index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.step += 1
            window[state.step - window_start] = loss.detach()
            if on_step is not None:
                on_step(state.step)
            at_end = state.step == tc.steps
            if state.step % tc.log_every == 0 or at_end:
                losses = window_losses()
                row = {
                    "step": state.step,
                    "train_loss": float(losses.mean()),
                    "heldout_mse": float("nan"),
                    "elapsed_s": elapsed0 + time.perf_counter() - t0,
                }
                if state.step % tc.eval_every == 0 or at_end:
                    row["heldout_mse"] = last_eval = held_out_mse(model, eval_batches,
                                                                  tc.loss_from_index)
                state.log.append(row)
                window_start = state.step + 1
                bar.update(state.step - bar.n)
                bar.set_postfix(loss=f"{row['train_loss']:.2e}", heldout=f"{last_eval:.2e}")
            periodic = state.step % tc.checkpoint_every == 0 and not at_end
            if ckpt_dir is not None and (periodic or stop.signum is not None):
                state.pending = window_losses().tolist()
                where = save_checkpoint(state, ckpt_dir, cfg)
            if stop.signum is not None:
                name = signal.Signals(stop.signum).name
                saved = f"checkpoint written to {where}" if ckpt_dir is not None else "no checkpoint directory"
                raise TrainingInterrupted(
                    f"{name} received: training stopped at step {state.step} of {tc.steps}; "
                    f"{saved}; rerun to resume"
                )
    bar.close()
    return state


def log_frame(state: TrainState) -> pd.DataFrame:
    """The training log as a table: step, train_loss (mean over the window), heldout_mse, elapsed_s."""
    return pd.DataFrame(state.log, columns=["step", "train_loss", "heldout_mse", "elapsed_s"])


def save_outputs(
    state: TrainState, cfg: RunConfig, weights: Path, optimizer: Path, log: Path
) -> None:
    """Write final weights (safetensors), optimizer state and the training log (Parquet)."""
    optimizer = Path(optimizer)
    meta = {"config_hash": cfg.hash(), "run_config": json.dumps(cfg.to_dict()),
            "step": str(state.step)}
    save_weights(state.model, weights, extra=meta)
    optimizer.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state.optimizer.state_dict(), optimizer)
    write_parquet(pa.Table.from_pandas(log_frame(state), preserve_index=False), log, meta)
