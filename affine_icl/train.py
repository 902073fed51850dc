"""Training with the paper's protocol (section 3.2), resumable from atomic checkpoints.

Each step draws one sequence length uniformly from ``data.length_range`` and a fresh batch of
sequences on the training device (:class:`~affine_icl.data.TrainingStream`), and minimises the
MSE between outputs and next terms from output index ``train.loss_from_index`` on (index 2
predicts ``a_3``, the first term that is determined by the ones before it). Losses stay on the
device between log rows, so a step never waits for the host.

:class:`Trainer` trains one run, or K runs that differ only in their seed and ``model.init`` as
one stacked model (:mod:`affine_icl.stacked`); each run's result is the same, within float
tolerance, however it was batched. Its loop, :meth:`Trainer.run`, reads top to bottom: take a step
(:mod:`affine_icl.steps`: eager, or on CUDA recorded once as a CUDA graph, checked against an
eager step and replayed; ``train.cuda_graphs``, :func:`graph_mode`), add
the K losses to the :class:`LossWindow`, write a log row (and evaluate) at log boundaries,
checkpoint, and stop on SIGTERM/SIGINT. The window raises :class:`TrainingDiverged` as soon as a
log row or checkpoint would include a loss that is not finite.

Checkpoints (:mod:`affine_icl.checkpoints`) are per run, in a directory named by the run's
config hash, outside the rule's declared outputs, so Snakemake never deletes them and a changed
config never resumes from a stale one. A rerun after a crash or kill resumes from the newest
complete checkpoint; because the weights, AdamW moments, the stream's generators and the loss
window are restored, the resumed run ends with the same weights and log as an uninterrupted one
(bitwise on CPU).
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import pandas as pd
import pyarrow as pa
import torch
from tqdm.auto import tqdm

from . import stacked
from .checkpoints import (
    checkpoint_dir,
    load_optimizer_states,
    locked,
    read_latest,
    run_optimizer_state,
    snapshot_dir,
    snapshot_step,
    snapshot_steps,
    write_checkpoint,
    write_snapshot,
)
from .config import ConfigError, ModelConfig, RunConfig, batch_settings
from .data import Batch, TrainingStream, write_parquet
from .errors import Stopped
from .model import VectorTransformer, save_weights
from .provenance import code_version
from .stacked import masked_losses, stack_state_dicts, unstack_state_dict
from .steps import CapturedStep, EagerStep, GuardedStep


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(Stopped):
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


#: Device types whose steps may be recorded as a graph. Tests add "cpu" (with the recording
#: itself replaced) to run the recording, checking and fallback logic without a GPU.
GRAPH_DEVICES: tuple[str, ...] = ("cuda",)


def graph_mode(setting: str, capture: bool | None, device: torch.device) -> str:
    """How steps run on ``device``: ``"off"`` (eager), or ``"auto"`` / ``"on"`` (recorded as a
    CUDA graph, checked on the first step; if that fails, ``auto`` goes on eagerly and ``on``
    raises: :class:`~affine_icl.steps.GuardedStep`).

    ``setting`` is ``train.cuda_graphs``, the one source in a workflow run; ``capture``, when not
    None, overrides it (True: ``on``, False: ``off``; for tests and benchmarks). Off CUDA,
    ``auto`` means eager, and ``on`` is a :class:`ConfigError`: it asks for graphs, and a run
    that silently trained without them would hide a missing GPU.
    """
    mode = setting if capture is None else ("on" if capture else "off")
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"train.cuda_graphs: {mode!r} is not one of auto, on, off")
    if device.type in GRAPH_DEVICES:
        return mode
    if mode == "on":
        raise ConfigError(
            f"train.cuda_graphs: on needs a CUDA device, but training runs on {device}; "
            "use auto (graphs where CUDA is) or off"
        )
    return "off"


def check_batchable(cfgs: list[RunConfig]) -> None:
    """Runs train together only when they differ in nothing but what decides their initial
    weights: the seed and ``model.init`` (the forward, data schedule and update are shared
    arithmetic; each run's data and initial weights depend only on its own settings)."""
    if not cfgs:
        raise ValueError("no runs to train")
    first = batch_settings(cfgs[0])
    for cfg in cfgs[1:]:
        other = batch_settings(cfg)
        for section, values in first.items():
            for key, value in values.items():
                if other[section][key] != value:
                    raise ValueError(
                        f"runs with seeds {cfgs[0].train.seed} and {cfg.train.seed} differ in "
                        f"{section}.{key} ({value!r} vs {other[section][key]!r}); only runs that "
                        "differ in nothing but the seed and model.init can train batched"
                    )
    starts = [(c.train.seed, c.model.init) for c in cfgs]
    if len(set(starts)) != len(starts):
        raise ValueError(
            f"batched runs need distinct (seed, model.init) pairs, got {starts}: two would be "
            "the same run"
        )


# --------------------------------------------------------------------------- the loop's parts


@dataclass
class RunResult:
    """One trained run: its config, final model, step count, training log and AdamW state.

    ``optimizer_state`` holds ``step`` and the moments ``exp_avg`` / ``exp_avg_sq`` under the
    model's TransformerLens parameter names, independent of how the run was batched.
    ``snapshots``: the run's weights snapshots on disk by step (``train.snapshot_every``; kept
    beside its checkpoints, so only a run with a checkpoint directory has them).
    """

    cfg: RunConfig
    model: VectorTransformer
    step: int
    log: list[dict]
    optimizer_state: dict
    snapshots: dict[int, Path] = field(default_factory=dict)

    def missing_snapshots(self) -> list[int]:
        """Steps of the snapshot schedule up to now without a snapshot (a run resumed from a
        checkpoint written before snapshots were kept has none before it)."""
        due = snapshot_steps(self.step, self.cfg.train.snapshot_every)
        return [s for s in due if s not in self.snapshots]


class LossWindow:
    """The K runs' losses since the last log row, on the device until a log row or checkpoint.

    A log row is the window's mean (:meth:`flush`); a checkpoint stores the window so far
    (:meth:`pending`), so a run resumed from it (:meth:`restore`) logs what an uninterrupted
    one logs. Reading the losses checks them: the first loss that is not finite raises
    :class:`TrainingDiverged` naming its run and step, before any log row or checkpoint has it.
    """

    def __init__(self, cfgs: list[RunConfig], size: int, device: torch.device):
        self.cfgs = cfgs
        self.losses = torch.zeros(len(cfgs), size, device=device)
        self.count = 0  # losses in the window, of steps last_step - count + 1 .. last_step
        self.last_step = 0

    def add(self, step: int, losses: torch.Tensor) -> None:
        """The K losses ``[K]`` of ``step``, the step after the last one added."""
        self.losses[:, self.count] = losses
        self.count += 1
        self.last_step = step

    def flush(self) -> list[float]:
        """Each run's mean loss over the window, which then starts again empty."""
        means = self._checked().mean(dim=1).tolist()
        self.count = 0
        return means

    def pending(self) -> list[list[float]]:
        """Each run's losses in the window so far, as a checkpoint stores them."""
        return self._checked().tolist()

    def restore(self, pending: list[list[float]], step: int) -> None:
        """The window of a checkpoint of ``step``: its :meth:`pending` losses (the checkpoint
        may have been written with a longer ``log_every``: the window then grows to fit)."""
        self.count, self.last_step = len(pending[0]), step
        room = self.count + self.losses.shape[1]  # until the next multiple of log_every
        if self.count and room > self.losses.shape[1]:
            self.losses = torch.zeros(len(self.cfgs), room, device=self.losses.device)
        if self.count:
            self.losses[:, : self.count] = torch.tensor(pending, device=self.losses.device)

    def _checked(self) -> torch.Tensor:
        """The window so far ``[K, count]``, after checking that every loss in it is finite."""
        losses = self.losses[:, : self.count]
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            run, bad = (int(i) for i in (~finite).nonzero()[0])
            cfg = self.cfgs[run]
            raise TrainingDiverged(
                f"training diverged: loss is {losses[run, bad].item()} at step "
                f"{self.last_step - self.count + 1 + bad} (run seed {cfg.train.seed}, "
                f"config {cfg.hash()}); no checkpoint was written after it"
            )
        return losses


def _mse_text(value: float) -> str:
    """A held-out MSE for people: '-' before the first evaluation (not 'nan', which reads like
    divergence)."""
    return "-" if value != value else f"{value:.2e}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class _Progress:
    """The progress bar (into the rule's log), a status line every ``STATUS_PERCENT`` % of the
    steps on ``status`` (the terminal), and the clock of the log's ``elapsed_s`` (continued on
    resumption)."""

    STATUS_PERCENT = 5

    def __init__(
        self,
        cfgs: list[RunConfig],
        logs: list[list[dict]],
        step: int,
        enabled: bool,
        status: TextIO | None = None,
        label: str | None = None,
    ):
        self.t0, self.step0, self.total = time.perf_counter(), step, cfgs[0].train.steps
        self.elapsed0 = logs[0][-1]["elapsed_s"] if logs[0] else 0.0
        self.heldout = [float("nan")] * len(cfgs)  # each run's latest held-out MSE
        self.heldout_step = None  # the step it was measured at
        for j, log in enumerate(logs):
            evals = [r for r in log if r["heldout_mse"] == r["heldout_mse"]]
            self.heldout[j] = evals[-1]["heldout_mse"] if evals else float("nan")
            self.heldout_step = evals[-1]["step"] if evals else None
        seeds = ",".join(str(c.train.seed) for c in cfgs)
        self.label = label or f"seed{'s' if len(cfgs) > 1 else ''}={seeds}"
        self.status, self.reported = status, self._bucket(step)
        self.bar = tqdm(
            total=self.total,
            initial=step,
            disable=not enabled,
            unit="step",
            mininterval=5.0,
            desc=f"train {self.label}",
        )

    def _bucket(self, step: int) -> int:
        return step * 100 // (self.STATUS_PERCENT * self.total)

    def elapsed(self) -> float:
        """Seconds of training so far, before an interruption included."""
        return self.elapsed0 + time.perf_counter() - self.t0

    def show(self, step: int, means: list[float], heldout: list[float] | None) -> None:
        """Advance the bar to ``step`` with the worst run's loss and held-out MSE, and write a
        status line when ``step`` enters the next ``STATUS_PERCENT`` % of the steps."""
        if heldout is not None:
            self.heldout, self.heldout_step = heldout, step
        loss, mse = f"{max(means):.2e}", _mse_text(max(self.heldout))
        if self.heldout_step is not None and self.heldout_step != step:
            mse += f" (step {self.heldout_step})"  # measured then, not now
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(loss=loss, heldout=mse)
        if self.status is None or self._bucket(step) == self.reported:
            return
        self.reported = self._bucket(step)
        seconds = time.perf_counter() - self.t0
        rate = (step - self.step0) / seconds if seconds > 0 else float("inf")
        left = (self.total - step) / rate if rate > 0 else float("inf")
        print(
            f"train {self.label}: step {step}/{self.total} ({100 * step // self.total}%) "
            f"loss {loss}, held-out MSE {mse} | {rate:.3g} steps/s, {_duration(left)} left",
            file=self.status,
            flush=True,
        )

    def close(self) -> None:
        self.bar.close()


def _interrupted(
    signum: int, step: int, steps: int, where: list[Path] | None
) -> TrainingInterrupted:
    """What to raise after signal ``signum`` at ``step``, with the checkpoints written there."""
    saved = (
        f"checkpoint written to {', '.join(map(str, where))}"
        if where is not None
        else "no checkpoint directory"
    )
    return TrainingInterrupted(
        f"{signal.Signals(signum).name} received: training stopped at step {step} of {steps}; "
        f"{saved}; rerun to resume"
    )


# --------------------------------------------------------------------------- the trainer


class Trainer:
    """Trains K runs that differ only in their seed and ``model.init`` as one stacked model
    (K = 1: one run).

    Each run is the same as when trained alone, within float tolerance: its initial weights,
    data and AdamW update depend only on its own seed and init (the stacked forward, the padded loss
    and the stacked optimizer are exact reformulations; ``tests/test_stacked.py``).

    ``train.cuda_graphs`` (``auto``, the default: on CUDA) records the whole step (forward,
    backward, AdamW) as one CUDA graph and replays it, after checking its first step against an
    eager one (:func:`graph_mode`, :class:`~affine_icl.steps.GuardedStep`); ``capture``
    overrides the setting (True: ``on``, False: ``off``). A graph has fixed shapes, so its
    steps are padded to the longest length of ``data.length_range`` and masked;
    ``static_shape=True`` pads eager steps the same way (the CPU tests use it to check the
    graph's arithmetic). Otherwise eager steps, a fallback from a graph included, are padded
    only to the longest length among the K runs at that step. ``compiled=True`` runs the
    statically shaped steps' forward and loss through ``torch.compile`` (the benchmark's
    ``--compiled`` path; :class:`~affine_icl.steps.EagerStep`); with neither a graph nor
    ``static_shape`` there is no such step, which is an error.
    """

    def __init__(
        self,
        cfgs: list[RunConfig],
        device: torch.device | str = "cpu",
        *,
        capture: bool | None = None,
        static_shape: bool = False,
        compiled: bool = False,
    ):
        check_batchable(cfgs)
        self.cfgs = list(cfgs)
        self.device = torch.device(device)
        cfg = cfgs[0]
        self.mcfg, self.tcfg = cfg.model, cfg.train
        models = [
            VectorTransformer(c.model).init_weights(torch.Generator().manual_seed(c.train.seed))
            for c in cfgs
        ]
        stacked_weights = stack_state_dicts([m.state_dict() for m in models], cfg.model)
        self.params = {k: v.to(self.device).requires_grad_() for k, v in stacked_weights.items()}
        on_cuda = self.device.type == "cuda"
        self.graphs = graph_mode(self.tcfg.cuda_graphs, capture, self.device)
        if compiled and self.graphs == "off" and not static_shape:
            raise ValueError(
                "compiled=True compiles the statically shaped steps, and this trainer has none: "
                "use it with CUDA graphs or static_shape=True"
            )
        self.optimizer = torch.optim.AdamW(
            list(self.params.values()),
            lr=self.tcfg.lr,
            betas=self.tcfg.betas,
            weight_decay=self.tcfg.weight_decay,
            fused=True,
            capturable=on_cuda,
        )
        self.eager_step = EagerStep(
            self.params,
            self.optimizer,
            self.mcfg,
            self.tcfg.loss_from_index,
            static_shape=static_shape,
            compiled=compiled and static_shape,
        )
        self.compiled = compiled
        self._step = self._new_step()
        self.stream = TrainingStream(cfg.data, self.tcfg.batch_size, self.seeds, self.device)
        self.step = 0
        self.logs: list[list[dict]] = [[] for _ in cfgs]
        self.window = LossWindow(self.cfgs, self.tcfg.log_every, self.device)
        self.roots: list[Path] | None = None  # the runs' checkpoint directories, once run
        self.resumed_end = False  # resumed from the end of a shorter run

    @property
    def seeds(self) -> list[int]:
        return [c.train.seed for c in self.cfgs]

    def _new_step(self) -> EagerStep | GuardedStep:
        """The step to take: eager, or a graph recorded and checked on its first call (once a
        graph failed and ``auto`` fell back, that step stays: eager, one warning per trainer)."""
        previous = getattr(self, "_step", None)
        if isinstance(previous, GuardedStep) and previous.failure is not None:
            return previous
        if self.graphs == "off":
            return self.eager_step
        static = EagerStep(
            self.params,
            self.optimizer,
            self.mcfg,
            self.tcfg.loss_from_index,
            static_shape=True,
            compiled=self.compiled,
        )
        return GuardedStep(CapturedStep(static), self.eager_step, strict=self.graphs == "on")

    def graph_status(self) -> str:
        """How steps run: ``eager``, ``graph`` (replaying), ``graph (not recorded yet)``, or
        ``eager (graph failed: <why>)``."""
        step = self._step
        if not isinstance(step, GuardedStep):
            return "eager"
        if step.failure is not None:
            return f"eager (graph failed: {step.failure})"
        return "graph" if step.checked else "graph (not recorded yet)"

    def train_step(self) -> torch.Tensor:
        """Take the next step of every run; returns the K losses (on the device, no sync)."""
        losses = self._step(*self.stream.step(self.step))
        self.step += 1
        return losses

    # ---- the loop

    def run(
        self,
        eval_batches: dict[int, Batch],
        *,
        checkpoint_roots: list[Path] | None = None,
        progress: bool = True,
        status: TextIO | None = None,
        label: str | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> list[RunResult]:
        """Train every run to ``train.steps`` (resuming from checkpoints) and return the results.

        ``progress``: a progress bar on stderr; ``status``: where to write a line every 5% of
        the steps (the terminal, when stderr goes to a log), naming the runs by ``label``.
        ``on_step(step)`` is called after every optimizer step; tests use it to simulate a crash.
        Raises :class:`TrainingDiverged` naming the first run and step whose loss was not
        finite, and :class:`TrainingInterrupted` after SIGTERM/SIGINT, once a checkpoint of the
        current step is written (within one step of the signal).
        """
        tc, roots = self.tcfg, None
        if checkpoint_roots is not None:
            roots = self.roots = [Path(r) for r in checkpoint_roots]
        # a second trainer of the same runs stops at once (checkpoints.locked)
        directories = [checkpoint_dir(r, c) for r, c in zip(roots or [], self.cfgs, strict=False)]
        with locked(directories):
            if roots is not None and self.resume(roots):
                message = (
                    f"resumed from step {self.step} of {tc.steps} (checkpoints under "
                    f"{', '.join(map(str, roots))}, locked by this job)"
                )
                if self.step < tc.steps and self.resumed_end:
                    message += (
                        ": a run of that many steps ended there, so this longer run continues "
                        "it (the weights are those of one uninterrupted run; the log has that "
                        "run's last row too)"
                    )
                logging.getLogger("affine_icl").info("%s", message)
                if status is not None:  # the terminal too, not only the rule's log
                    print(f"train {label or 'runs'}: {message}", file=status, flush=True)
            return self._loop(eval_batches, roots, progress, status, label, on_step)

    def _loop(self, eval_batches, roots, progress, status, label, on_step) -> list[RunResult]:
        """The training loop of :meth:`run`, from the current step to ``train.steps``."""
        tc, where = self.tcfg, None
        bar = _Progress(self.cfgs, self.logs, self.step, progress, status, label)
        with _stop_requests() as stop:
            while self.step < tc.steps:
                losses = self.train_step()
                self.window.add(self.step, losses)
                if on_step is not None:
                    on_step(self.step)
                at_end = self.step == tc.steps
                if self.step % tc.log_every == 0 or at_end:
                    means, elapsed = self.window.flush(), bar.elapsed()
                    heldout = None
                    if self.step % tc.eval_every == 0 or at_end:
                        heldout = self._evaluate(eval_batches)
                    self._log(means, heldout, elapsed)
                    bar.show(self.step, means, heldout)
                if roots is not None and tc.snapshot_every and self.step % tc.snapshot_every == 0:
                    self.save_snapshots(roots)
                # the last checkpoint stays: a rerun of a finished run ends here in seconds
                due = self.step % tc.checkpoint_every == 0 or at_end
                if roots is not None and (due or stop.signum is not None):
                    where = self.save_checkpoints(roots)
                if stop.signum is not None:
                    raise _interrupted(stop.signum, self.step, tc.steps, where)
        bar.close()
        return [self.result(j) for j in range(len(self.cfgs))]

    def _evaluate(self, eval_batches: dict[int, Batch]) -> list[float]:
        """Each run's held-out MSE now."""
        mse = held_out_mse(self.params, eval_batches, self.mcfg, self.tcfg.loss_from_index)
        return mse.tolist()

    def _log(self, means: list[float], heldout: list[float] | None, elapsed: float) -> None:
        """Append a row to each run's log (``heldout_mse`` NaN between evaluations)."""
        if heldout is None:
            heldout = [float("nan")] * len(self.cfgs)
        for log, mean, mse in zip(self.logs, means, heldout, strict=True):
            log.append(
                {"step": self.step, "train_loss": mean, "heldout_mse": mse, "elapsed_s": elapsed}
            )

    # ---- state of one run, in the layout-independent form of checkpoints and outputs

    def run_weights(self, k: int) -> dict[str, torch.Tensor]:
        return unstack_state_dict(self.params, k, self.mcfg)

    def run_optimizer_state(self, k: int) -> dict:
        return run_optimizer_state(self.params, self.optimizer, k, self.mcfg)

    def result(self, k: int) -> RunResult:
        """Run ``k`` as it is now."""
        model = VectorTransformer(self.cfgs[k].model).to(self.device)
        model.load_state_dict(self.run_weights(k), strict=True)
        snapshots = {}
        if self.roots is not None:
            for path in sorted(
                snapshot_dir(self.roots[k], self.cfgs[k]).glob("step-*.safetensors")
            ):
                step = snapshot_step(path)
                if step <= self.step:
                    snapshots[step] = path
        return RunResult(
            self.cfgs[k],
            model.eval(),
            self.step,
            self.logs[k],
            self.run_optimizer_state(k),
            snapshots,
        )

    def save_checkpoints(self, roots: list[Path]) -> list[Path]:
        """One checkpoint per run under ``roots[k]/<trajectory hash>/step-<n>`` (marked as a
        run's end at ``train.steps``)."""
        pending = self.window.pending()
        return [
            write_checkpoint(
                checkpoint_dir(root, cfg),
                cfg,
                self.step,
                self.run_weights(k),
                {
                    "optimizer": self.run_optimizer_state(k),
                    "stream": self.stream.run_state(k),
                    "log": json.dumps(self.logs[k]),
                    "pending": json.dumps(pending[k]),
                },
                end=self.step == self.tcfg.steps,
            )
            for k, (root, cfg) in enumerate(zip(roots, self.cfgs, strict=True))
        ]

    def save_snapshots(self, roots: list[Path]) -> list[Path]:
        """Each run's weights now, as ``roots[k]/<config hash>/snapshots/step-<n>.safetensors``
        (loadable like the final model; a resumed run rewrites the same bits)."""
        return [
            write_snapshot(
                snapshot_dir(root, cfg),
                self.run_weights(k),
                {"model_config": json.dumps(asdict(cfg.model)), **provenance(cfg)},
                self.step,
            )
            for k, (root, cfg) in enumerate(zip(roots, self.cfgs, strict=True))
        ]

    def resume(self, roots: list[Path]) -> bool:
        """Load every run's newest checkpoint; False when none has one."""
        loaded = read_latest(roots, self.cfgs)
        if loaded is None:
            return False
        extras = [e for _, e in loaded]
        with torch.no_grad():
            for name, value in stack_state_dicts([w for w, _ in loaded], self.mcfg).items():
                self.params[name].copy_(value)
        load_optimizer_states(
            self.params, self.optimizer, [e["optimizer"] for e in extras], self.mcfg
        )
        self._step = self._new_step()  # a graph recorded before updates the replaced state
        self.stream.load_run_states([e["stream"] for e in extras])
        self.step = int(extras[0]["step"])
        self.resumed_end = extras[0].get("end", False)
        self.logs = [json.loads(e["log"]) for e in extras]
        self.window.restore([json.loads(e["pending"]) for e in extras], self.step)
        return True


def train_runs(
    cfgs: list[RunConfig],
    eval_batches: dict[int, Batch],
    *,
    device: torch.device | str = "cpu",
    checkpoint_roots: list[Path | str] | None = None,
    progress: bool = True,
    status: TextIO | None = None,
    label: str | None = None,
    on_step: Callable[[int], None] | None = None,
    capture: bool | None = None,
) -> list[RunResult]:
    """Train (or resume) runs that differ only in their seed and ``model.init``, batched as one
    stacked model (``progress``, ``status``, ``label``: :meth:`Trainer.run`)."""
    trainer = Trainer(cfgs, device, capture=capture)
    return trainer.run(
        eval_batches,
        checkpoint_roots=checkpoint_roots,
        progress=progress,
        status=status,
        label=label,
        on_step=on_step,
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


def provenance(cfg: RunConfig) -> dict[str, str]:
    """The metadata that ties weights (final or snapshot) and the training log to their run:
    ``config_hash`` (the model after ``train.steps``), ``trajectory_hash`` (its training,
    whatever the steps: what a snapshot is checked by, with its ``step``), ``run_config``
    (JSON) and the code that wrote them (``code_commit``, ``code_hash``:
    :func:`affine_icl.provenance.code_version`)."""
    return {
        "config_hash": cfg.hash(),
        "trajectory_hash": cfg.trajectory_hash(),
        "run_config": json.dumps(cfg.to_dict()),
        **code_version(),
    }


def save_outputs(
    result: RunResult, weights: Path, optimizer: Path, log: Path, snapshots: Path | None = None
) -> None:
    """Write final weights (safetensors), AdamW state, the training log (Parquet) and, into the
    directory ``snapshots``, the run's weights snapshots (hard links to the ones kept beside the
    checkpoints where the file system allows, copies otherwise)."""
    cfg, optimizer = result.cfg, Path(optimizer)
    meta = {**provenance(cfg), "step": str(result.step)}
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
    if snapshots is not None:
        snapshots = Path(snapshots)
        snapshots.mkdir(parents=True, exist_ok=True)
        for source in result.snapshots.values():
            target = snapshots / source.name
            target.unlink(missing_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
