"""Training with the paper's protocol (section 3.2), resumable from atomic checkpoints.

Each step draws one sequence length uniformly from ``data.length_range`` and a fresh batch of
sequences on the training device (:class:`~affine_icl.data.TrainingStream`), and minimises the
MSE between outputs and next terms from output index ``train.loss_from_index`` on (index 2
predicts ``a_3``, the first term that is determined by the ones before it). Losses stay on the
device between log rows, so a step never waits for the host.

:class:`Trainer` trains one run, or K runs that differ only in their seed as one stacked model
(:mod:`affine_icl.stacked`); on CUDA it records the whole step as a CUDA graph. Each run's
result is the same, within float tolerance, however it was batched.

Checkpoints are per run, in a directory named by the run's config hash, outside the rule's
declared outputs, so Snakemake never deletes them and a changed config never resumes from a
stale one. A rerun after a crash or kill resumes from the newest complete checkpoint; because
the weights, AdamW moments and the stream's generators are restored, the resumed run ends with
the same weights as an uninterrupted one (bitwise on CPU).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from . import stacked
from .config import ModelConfig, RunConfig
from .data import Batch, TrainingStream, write_parquet
from .model import VectorTransformer, save_weights
from .stacked import masked_losses, stack_state_dicts, unstack_state_dict


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
            log.warning(
                "CUDA_VISIBLE_DEVICES=%s is set but CUDA is not usable here; "
                "falling back to the CPU",
                visible,
            )
        device = torch.device("cuda" if usable else "cpu")
    else:
        device = torch.device(spec)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {spec!r} requested but CUDA is not available")
    log.info("device: %s (config device: %s, CUDA_VISIBLE_DEVICES=%s)", device, spec, visible)
    return device


@torch.no_grad()
def held_out_mse(
    params: dict[str, torch.Tensor], batches: dict[int, Batch], cfg: ModelConfig, loss_from: int
) -> torch.Tensor:
    """Per stacked model ``[K]``: mean over lengths of the masked MSE, lengths weighted equally."""
    k = next(iter(params.values())).shape[0]
    device = next(iter(params.values())).device
    losses = []
    for length, batch in batches.items():
        terms = batch.terms.to(device)[None].expand(k, -1, -1, -1)
        out = stacked.forward(params, terms[:, :, :-1], cfg)
        lengths = torch.full((k,), length, device=device)
        losses.append(masked_losses(out, terms[:, :, 1:], lengths, loss_from))
    return torch.stack(losses).mean(dim=0)


def check_batchable(cfgs: list[RunConfig]) -> None:
    """Runs train together only when they differ in nothing but the seed."""
    if not cfgs:
        raise ValueError("no runs to train")
    first = cfgs[0].to_dict()
    first["train"].pop("seed")
    for cfg in cfgs[1:]:
        other = cfg.to_dict()
        other["train"].pop("seed")
        for section, values in first.items():
            for key, value in values.items():
                if other[section][key] != value:
                    raise ValueError(
                        f"runs with seeds {cfgs[0].train.seed} and {cfg.train.seed} differ in "
                        f"{section}.{key} ({value!r} vs {other[section][key]!r}); only runs that "
                        "differ in nothing but the seed can train batched"
                    )
    seeds = [c.train.seed for c in cfgs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"batched runs need distinct seeds, got {seeds}")


# --------------------------------------------------------------------------- results and checkpoints


@dataclass
class RunResult:
    """One trained run: its config, final model, step count, training log and AdamW state.

    ``optimizer_state`` holds ``step`` and the moments ``exp_avg`` / ``exp_avg_sq`` under the
    model's TransformerLens parameter names, independent of how the run was batched.
    """

    cfg: RunConfig
    model: VectorTransformer
    step: int
    log: list[dict]
    optimizer_state: dict


def checkpoint_dir(root: Path | str, cfg: RunConfig) -> Path:
    """Where checkpoints of this exact config live: ``root/<config hash>``."""
    return Path(root) / cfg.hash()


def latest_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob("step-*")) if directory.is_dir() else []
    return found[-1] if found else None


def _write_checkpoint(
    directory: Path, cfg: RunConfig, step: int, weights: dict, extra: dict
) -> Path:
    """Write ``directory/step-<n>`` atomically (temp dir + rename), then drop older ones."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:09d}"
    tmp = directory / f".tmp-step-{step:09d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    meta = {"config_hash": cfg.hash(), "step": str(step)}
    save_file(
        {k: v.cpu().contiguous() for k, v in weights.items()},
        str(tmp / "model.safetensors"),
        metadata=meta,
    )
    torch.save({"config_hash": cfg.hash(), "step": step, **extra}, tmp / "state.pt")
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in directory.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _read_checkpoint(path: Path, cfg: RunConfig) -> tuple[dict, dict]:
    """Weights and extra state of one run's checkpoint, refusing one of another config."""
    hint = f"delete {path} to restart this run from step 0"
    try:
        extra = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        weights = load_file(str(path / "model.safetensors"))
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({exc}); {hint}") from exc
    if extra.get("config_hash") != cfg.hash():
        raise CheckpointError(
            f"checkpoint {path} was written by config {extra.get('config_hash')}, "
            f"not this run's {cfg.hash()}; {hint}"
        )
    return weights, extra


# --------------------------------------------------------------------------- the trainer


class Trainer:
    """Trains K runs that differ only in their seed as one stacked model (K = 1: one run).

    Each run is the same as when trained alone, within float tolerance: its initial weights,
    data and AdamW update depend only on its own seed (the stacked forward, the padded loss
    and the stacked optimizer are exact reformulations; ``tests/test_stacked.py``).

    ``capture``: record the whole step (forward, backward, AdamW) as one CUDA graph and
    replay it (default: on CUDA). A graph has fixed shapes, so every step is then padded to
    the longest length of ``data.length_range`` and masked; ``static_shape=True`` does the
    same padding eagerly (the CPU tests use it to check the graph's arithmetic). Otherwise
    each step is padded only to the longest length among the K runs at that step.
    """

    def __init__(
        self,
        cfgs: list[RunConfig],
        device: torch.device | str = "cpu",
        *,
        capture: bool | None = None,
        static_shape: bool = False,
    ):
        check_batchable(cfgs)
        self.cfgs = list(cfgs)
        self.device = torch.device(device)
        cfg = cfgs[0]
        self.mcfg, self.tcfg = cfg.model, cfg.train
        models = [
            VectorTransformer(cfg.model).init_weights(torch.Generator().manual_seed(c.train.seed))
            for c in cfgs
        ]
        stacked_weights = stack_state_dicts([m.state_dict() for m in models], cfg.model)
        self.params = {k: v.to(self.device).requires_grad_() for k, v in stacked_weights.items()}
        on_cuda = self.device.type == "cuda"
        self.capture = on_cuda if capture is None else capture
        if self.capture and not on_cuda:
            raise ValueError("capture=True needs a CUDA device")
        self.static_shape = static_shape or self.capture
        self.optimizer = torch.optim.AdamW(
            list(self.params.values()),
            lr=self.tcfg.lr,
            betas=self.tcfg.betas,
            weight_decay=self.tcfg.weight_decay,
            fused=True,
            capturable=on_cuda,
        )
        self.stream = TrainingStream(
            cfg.data, self.tcfg.batch_size, [c.train.seed for c in cfgs], self.device
        )
        self.step = 0
        self.logs: list[list[dict]] = [[] for _ in cfgs]
        self.pending: list[list[float]] = [[] for _ in cfgs]
        self._graph = None

    @property
    def seeds(self) -> list[int]:
        return [c.train.seed for c in self.cfgs]

    # ---- one optimizer step

    def _body(self, terms: torch.Tensor, lengths: torch.Tensor, positions: int) -> torch.Tensor:
        """Forward, masked loss, backward and AdamW on padded terms; per-run losses ``[K]``."""
        out = stacked.forward(self.params, terms[:, :, :positions], self.mcfg)
        losses = masked_losses(
            out, terms[:, :, 1 : positions + 1], lengths, self.tcfg.loss_from_index
        )
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach()

    def train_step(self) -> torch.Tensor:
        """Take the next step of every run; returns the K losses (on the device, no sync)."""
        lengths, device_lengths, terms = self.stream.step(self.step)
        if self.capture:
            if self._graph is None:
                self._capture_graph(terms.shape)
            self._static_terms.copy_(terms)
            self._static_lengths.copy_(device_lengths)
            self._graph.replay()
            losses = self._static_losses
        else:
            self.optimizer.zero_grad(set_to_none=True)
            positions = terms.shape[2] - 1 if self.static_shape else int(lengths.max())
            losses = self._body(terms, device_lengths, positions)
        self.step += 1
        return losses

    def _capture_graph(self, shape: torch.Size) -> None:
        """Record one step on padded terms of ``shape`` as a CUDA graph (warm-up undone)."""
        k, b, positions, dim = shape
        self._static_terms = torch.zeros(k, b, positions, dim, device=self.device)
        self._static_lengths = torch.full((k,), positions - 1, device=self.device)
        saved = {n: p.detach().clone() for n, p in self.params.items()}
        saved_state = {
            id(p): {n: v.clone() for n, v in s.items()} for p, s in self.optimizer.state.items()
        }
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self.optimizer.zero_grad(set_to_none=True)
                self._body(self._static_terms, self._static_lengths, positions - 1)
        torch.cuda.current_stream(self.device).wait_stream(side)
        with torch.no_grad():  # undo the warm-up: weights and AdamW state as before it
            for n, p in self.params.items():
                p.copy_(saved[n])
            for p, s in self.optimizer.state.items():
                for n, v in s.items():
                    if id(p) in saved_state:
                        v.copy_(saved_state[id(p)][n])
                    else:  # a fresh AdamW state is all zeros, step 0 included
                        v.zero_()
        self._graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self._graph):
            self._static_losses = self._body(
                self._static_terms, self._static_lengths, positions - 1
            )

    # ---- state of one run, in the layout-independent form of checkpoints and outputs

    def run_weights(self, k: int) -> dict[str, torch.Tensor]:
        return unstack_state_dict(self.params, k, self.mcfg)

    def run_optimizer_state(self, k: int) -> dict:
        state = [self.optimizer.state.get(p, {}) for p in self.params.values()]
        if not state[0]:
            return {"step": 0}
        out = {"step": int(state[0]["step"])}
        for moment in ("exp_avg", "exp_avg_sq"):
            out[moment] = unstack_state_dict(
                {n: s[moment] for n, s in zip(self.params, state, strict=True)}, k, self.mcfg
            )
        return out

    def run_model(self, k: int) -> VectorTransformer:
        model = VectorTransformer(self.mcfg).to(self.device)
        model.load_state_dict(self.run_weights(k), strict=True)
        return model.eval()

    def save_checkpoints(self, roots: list[Path]) -> list[Path]:
        """One checkpoint per run under ``roots[k]/<config hash>/step-<n>``."""
        return [
            _write_checkpoint(
                checkpoint_dir(root, cfg),
                cfg,
                self.step,
                self.run_weights(k),
                {
                    "optimizer": self.run_optimizer_state(k),
                    "stream": self.stream.run_state(k),
                    "log": json.dumps(self.logs[k]),
                    "pending": json.dumps(self.pending[k]),
                },
            )
            for k, (root, cfg) in enumerate(zip(roots, self.cfgs, strict=True))
        ]

    def resume(self, roots: list[Path]) -> bool:
        """Load every run's newest checkpoint; False when none has one."""
        paths = [
            latest_checkpoint(checkpoint_dir(r, c)) for r, c in zip(roots, self.cfgs, strict=True)
        ]
        if all(p is None for p in paths):
            return False
        loaded = [
            _read_checkpoint(p, c) if p is not None else None
            for p, c in zip(paths, self.cfgs, strict=True)
        ]
        steps = {int(x[1]["step"]) if x else 0 for x in loaded}
        if len(steps) > 1:
            where = ", ".join(
                f"seed {c.train.seed}: {p or 'none'}" for c, p in zip(self.cfgs, paths, strict=True)
            )
            raise CheckpointError(
                f"runs batched together have checkpoints at different steps ({where}); "
                "delete the newer ones or train these runs one at a time"
            )
        weights = [w for w, _ in loaded]
        extras = [e for _, e in loaded]
        with torch.no_grad():
            for name, value in stack_state_dicts(weights, self.mcfg).items():
                self.params[name].copy_(value)
        step = extras[0]["optimizer"]["step"]
        if step:
            moments = {
                m: stack_state_dicts([e["optimizer"][m] for e in extras], self.mcfg)
                for m in ("exp_avg", "exp_avg_sq")
            }
            for name, p in self.params.items():
                self.optimizer.state[p] = {
                    "step": torch.tensor(float(step), dtype=torch.float32, device=p.device),
                    **{m: moments[m][name].to(self.device) for m in moments},
                }
        self.stream.load_run_states([e["stream"] for e in extras])
        self.step = int(extras[0]["step"])
        self.logs = [json.loads(e["log"]) for e in extras]
        self.pending = [json.loads(e["pending"]) for e in extras]
        self._graph = None
        return True

    # ---- the loop

    def run(
        self,
        eval_batches: dict[int, Batch],
        *,
        checkpoint_roots: list[Path] | None = None,
        progress: bool = True,
        on_step: Callable[[int], None] | None = None,
    ) -> list[RunResult]:
        """Train every run to ``train.steps`` (resuming from checkpoints) and return the results.

        ``on_step(step)`` is called after every optimizer step; tests use it to simulate a crash.
        Raises :class:`TrainingDiverged` naming the first run and step whose loss was not
        finite, and :class:`TrainingInterrupted` after SIGTERM/SIGINT, once a checkpoint of the
        current step is written (within one step of the signal).
        """
        tc, k = self.tcfg, len(self.cfgs)
        if checkpoint_roots is not None:
            checkpoint_roots = [Path(r) for r in checkpoint_roots]
            self.resume(checkpoint_roots)
        window = torch.zeros(k, tc.log_every, device=self.device)
        if self.pending[0]:
            window[:, : len(self.pending[0])] = torch.tensor(self.pending, device=self.device)
        window_start = self.step + 1 - len(self.pending[0])
        t0 = time.perf_counter()
        elapsed0 = self.logs[0][-1]["elapsed_s"] if self.logs[0] else 0.0
        last_eval = [float("nan")] * k
        for j, log in enumerate(self.logs):
            evals = [r["heldout_mse"] for r in log if r["heldout_mse"] == r["heldout_mse"]]
            last_eval[j] = evals[-1] if evals else float("nan")

        def window_losses() -> torch.Tensor:
            """The window so far ``[K, n]``, after checking that every loss in it is finite."""
            losses = window[:, : self.step - window_start + 1]
            finite = torch.isfinite(losses)
            if not bool(finite.all()):
                run, bad = (int(i) for i in (~finite).nonzero()[0])
                cfg = self.cfgs[run]
                raise TrainingDiverged(
                    f"training diverged: loss is {losses[run, bad].item()} at step "
                    f"{window_start + bad} (run seed {cfg.train.seed}, config {cfg.hash()}); "
                    "no checkpoint was written after it"
                )
            return losses

        seeds = ",".join(str(s) for s in self.seeds)
        bar = tqdm(
            total=tc.steps,
            initial=self.step,
            disable=not progress,
            unit="step",
            mininterval=5.0,
            desc=f"train seed{'s' if k > 1 else ''}={seeds}",
        )
        where = None
        with _stop_requests() as stop:
            while self.step < tc.steps:
                losses = self.train_step()
                window[:, self.step - window_start] = losses
                if on_step is not None:
                    on_step(self.step)
                at_end = self.step == tc.steps
                if self.step % tc.log_every == 0 or at_end:
                    means = window_losses().mean(dim=1).tolist()
                    elapsed = elapsed0 + time.perf_counter() - t0
                    if self.step % tc.eval_every == 0 or at_end:
                        last_eval = held_out_mse(
                            self.params, eval_batches, self.mcfg, tc.loss_from_index
                        ).tolist()
                        evals = last_eval
                    else:
                        evals = [float("nan")] * k
                    for j in range(k):
                        self.logs[j].append(
                            {
                                "step": self.step,
                                "train_loss": means[j],
                                "heldout_mse": evals[j],
                                "elapsed_s": elapsed,
                            }
                        )
                    window_start = self.step + 1
                    bar.update(self.step - bar.n)
                    bar.set_postfix(loss=f"{max(means):.2e}", heldout=f"{max(last_eval):.2e}")
                periodic = self.step % tc.checkpoint_every == 0 and not at_end
                if checkpoint_roots is not None and (periodic or stop.signum is not None):
                    self.pending = window_losses().tolist()
                    where = self.save_checkpoints(checkpoint_roots)
                if stop.signum is not None:
                    name = signal.Signals(stop.signum).name
                    saved = (
                        f"checkpoint written to {', '.join(map(str, where))}"
                        if checkpoint_roots is not None
                        else "no checkpoint directory"
                    )
                    raise TrainingInterrupted(
                        f"{name} received: training stopped at step {self.step} of {tc.steps}; "
                        f"{saved}; rerun to resume"
                    )
        bar.close()
        return [
            RunResult(cfg, self.run_model(j), self.step, self.logs[j], self.run_optimizer_state(j))
            for j, cfg in enumerate(self.cfgs)
        ]


def train_runs(
    cfgs: list[RunConfig],
    eval_batches: dict[int, Batch],
    *,
    device: torch.device | str = "cpu",
    checkpoint_roots: list[Path | str] | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    capture: bool | None = None,
) -> list[RunResult]:
    """Train (or resume) runs that differ only in their seed, batched as one stacked model."""
    trainer = Trainer(cfgs, device, capture=capture)
    return trainer.run(
        eval_batches, checkpoint_roots=checkpoint_roots, progress=progress, on_step=on_step
    )


def train(
    cfg: RunConfig,
    eval_batches: dict[int, Batch],
    *,
    device: torch.device | str = "cpu",
    checkpoint_root: Path | str | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    capture: bool | None = None,
) -> RunResult:
    """Train (or resume) one run; ``checkpoint_root``: where to keep resumable checkpoints."""
    roots = [checkpoint_root] if checkpoint_root is not None else None
    return train_runs(
        [cfg],
        eval_batches,
        device=device,
        checkpoint_roots=roots,
        progress=progress,
        on_step=on_step,
        capture=capture,
    )[0]


def log_frame(result: RunResult) -> pd.DataFrame:
    """The training log as a table: step, train_loss (mean over the window), heldout_mse, elapsed_s."""
    return pd.DataFrame(result.log, columns=["step", "train_loss", "heldout_mse", "elapsed_s"])


def save_outputs(result: RunResult, weights: Path, optimizer: Path, log: Path) -> None:
    """Write final weights (safetensors), AdamW state and the training log (Parquet)."""
    cfg, optimizer = result.cfg, Path(optimizer)
    meta = {
        "config_hash": cfg.hash(),
        "run_config": json.dumps(cfg.to_dict()),
        "step": str(result.step),
    }
    save_weights(result.model, weights, extra=meta)
    optimizer.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            **result.optimizer_state,
            "hyperparameters": {
                "lr": cfg.train.lr,
                "betas": list(cfg.train.betas),
                "weight_decay": cfg.train.weight_decay,
            },
        },
        optimizer,
    )
    write_parquet(pa.Table.from_pandas(log_frame(result), preserve_index=False), log, meta)
