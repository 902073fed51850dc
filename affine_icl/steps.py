"""One optimizer step of the stacked model: run eagerly, or recorded once as a CUDA graph.

A step is forward, masked loss, backward and AdamW over the stacked weights of K runs
(:mod:`affine_icl.stacked`) on one batch of padded sequences, and returns the K losses on the
device without waiting for them. Every kind takes the training stream's ``(lengths,
device_lengths, terms)`` and shares the same weights and optimizer:

* :class:`EagerStep` pads each step only to the longest length among the K runs at that step;
  with ``static_shape=True`` it pads to the longest length of ``data.length_range`` instead,
  the graph's arithmetic run eagerly (the CPU tests use it to check the graph's padding).
* :class:`CapturedStep` records the eager step (statically shaped) as one CUDA graph on its
  first call and replays it after, with the batch copied into the graph's input tensors.
  Recording warms up (on a side stream on CUDA) and then restores the weights and AdamW state
  (:func:`snapshot`), so the recorded run is the same as one that never warmed up; a recording
  that raises restores them too before the error propagates.
* :class:`GuardedStep` is how the trainer uses a graph (``train.cuda_graphs: auto | on``): on
  its first call it takes an eager step, puts the state back, records and replays the graph on
  the same batch and compares the two (:func:`disagreement`). If recording raised or they
  disagree, ``auto`` logs one warning and takes this and every later step eagerly from the
  same weights and AdamW state; ``on`` raises :class:`GraphCaptureError` instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable

import torch

from . import stacked
from .config import ModelConfig
from .stacked import masked_losses

#: Relative tolerance of the first replayed step against an eager step from the same state on
#: the same batch (the K losses, and AdamW's first moments, i.e. the step's gradients). Both
#: run the same kernels on the same shapes, so they should agree to float rounding (~1e-6); a
#: broken graph (stale inputs, a missing backward or update) is off by O(1). 1e-3 is also the
#: tolerance at which tests/test_stacked.py compares a captured run's loss curve with an eager
#: one's.
GRAPH_RTOL = 1e-3
#: Absolute floor for the loss comparison (losses of the paper's model start near 1).
GRAPH_LOSS_ATOL = 1e-6


class GraphCaptureError(RuntimeError):
    """``train.cuda_graphs: on`` and the step could not run as a CUDA graph."""


class EagerStep:
    """The optimizer step run eagerly; ``static_shape``: always pad to the longest length.

    ``compiled=True`` (static shapes only) runs the forward and the masked loss through
    ``torch.compile`` (compiled once, on the first step; backward through the compiled graph,
    AdamW as always): fewer kernels per step where launches bound it (a CUDA graph records the
    compiled kernels as any others). The same maths to float rounding; for the benchmark
    (``bench/train_step.py --compiled``), not what ``snakemake`` trains with.
    """

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        cfg: ModelConfig,
        loss_from: int,
        *,
        static_shape: bool = False,
        compiled: bool = False,
    ):
        if compiled and not static_shape:
            raise ValueError(
                "a compiled step needs static shapes (static_shape=True): one compilation per "
                "sequence length would exceed torch.compile's recompilation limit"
            )
        self.params, self.optimizer, self.cfg = params, optimizer, cfg
        self.loss_from, self.static_shape = loss_from, static_shape
        self.losses = torch.compile(self._losses, dynamic=False) if compiled else self._losses

    def __call__(
        self, lengths: torch.Tensor, device_lengths: torch.Tensor, terms: torch.Tensor
    ) -> torch.Tensor:
        """One step on ``terms [K, batch, longest length + 1, dim]``; the K losses ``[K]``."""
        self.optimizer.zero_grad(set_to_none=True)
        positions = terms.shape[2] - 1 if self.static_shape else int(lengths.max())
        return self.body(terms, device_lengths, positions)

    def _losses(self, terms: torch.Tensor, lengths: torch.Tensor, positions: int) -> torch.Tensor:
        """Forward and masked loss on padded terms: per-run losses ``[K]`` (with their graph)."""
        out = stacked.forward(self.params, terms[:, :, :positions], self.cfg)
        return masked_losses(out, terms[:, :, 1 : positions + 1], lengths, self.loss_from)

    def body(self, terms: torch.Tensor, lengths: torch.Tensor, positions: int) -> torch.Tensor:
        """Forward, masked loss, backward and AdamW on padded terms; per-run losses ``[K]``."""
        losses = self.losses(terms, lengths, positions)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach()


def snapshot(
    params: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer
) -> Callable[[], None]:
    """A copy of the weights and AdamW state now; calling the result copies them back into the
    same tensors (so a graph recorded on them still updates them). AdamW state made after the
    copy (by the first step) goes back to zeros, step count included: what a fresh state is."""
    weights = {n: p.detach().clone() for n, p in params.items()}
    state = {id(p): {n: v.clone() for n, v in s.items()} for p, s in optimizer.state.items()}

    @torch.no_grad()
    def restore() -> None:
        for n, p in params.items():
            p.copy_(weights[n])
        for p, s in optimizer.state.items():
            for n, v in s.items():
                if id(p) in state:
                    v.copy_(state[id(p)][n])
                else:
                    v.zero_()

    return restore


class CapturedStep:
    """``eager``'s step recorded as a CUDA graph on the first call, replayed on every call."""

    def __init__(self, eager: EagerStep):
        self.eager = eager
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(
        self, lengths: torch.Tensor, device_lengths: torch.Tensor, terms: torch.Tensor
    ) -> torch.Tensor:
        """One step (recording the graph first if needed); the K losses ``[K]``."""
        if self.graph is None:
            self.record(terms.shape)
        self.terms.copy_(terms)
        self.lengths.copy_(device_lengths)
        self.graph.replay()
        return self.losses

    def record(self, shape: torch.Size) -> None:
        """Record one step on padded terms of ``shape`` as a CUDA graph (warm-up undone). If
        anything raises, the weights and AdamW state are put back before the error goes on."""
        device = next(iter(self.eager.params.values())).device
        k, b, positions, dim = shape
        self.terms = torch.zeros(k, b, positions, dim, device=device)
        self.lengths = torch.full((k,), positions - 1, device=device)
        restore = snapshot(self.eager.params, self.eager.optimizer)
        try:
            self._warm_up(positions - 1)
            restore()  # the recorded run is the same as one that never warmed up
            self.graph, self.losses = self._capture_graph(positions - 1)
        except BaseException:
            self.graph = None
            restore()
            raise

    def _warm_up(self, positions: int) -> None:
        """Three eager steps on the graph's inputs, so that what is made lazily (AdamW's state,
        library handles and workspaces) exists before recording; on a side stream on CUDA."""
        device = self.terms.device
        side = torch.cuda.Stream(device) if device.type == "cuda" else None
        if side is not None:
            side.wait_stream(torch.cuda.current_stream(device))
        try:
            with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
                for _ in range(3):
                    self.eager.optimizer.zero_grad(set_to_none=True)
                    self.eager.body(self.terms, self.lengths, positions)
        finally:
            if side is not None:
                torch.cuda.current_stream(device).wait_stream(side)

    def _capture_graph(self, positions: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        """The step recorded as a CUDA graph, and its output: the K losses (the graph's own
        tensor, rewritten by each replay)."""
        graph = torch.cuda.CUDAGraph()
        self.eager.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            losses = self.eager.body(self.terms, self.lengths, positions)
        return graph, losses


def first_moments(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """AdamW's first moments (``exp_avg``), one per parameter with state, in a fixed order."""
    return [
        optimizer.state[p]["exp_avg"]
        for group in optimizer.param_groups
        for p in group["params"]
        if "exp_avg" in optimizer.state[p]
    ]


def disagreement(
    losses: torch.Tensor,
    expected: torch.Tensor,
    moments: list[torch.Tensor],
    expected_moments: list[torch.Tensor],
    rtol: float = GRAPH_RTOL,
) -> str | None:
    """Why a replayed step differs from an eager one from the same state on the same batch,
    or None when it does not: the K losses within ``rtol`` each, and the first moments (the
    gradient, after the first step) within ``rtol`` in norm over all weights together."""
    if not torch.allclose(losses, expected, rtol=rtol, atol=GRAPH_LOSS_ATOL):
        got = ", ".join(f"{x:.6g}" for x in losses.tolist())
        want = ", ".join(f"{x:.6g}" for x in expected.tolist())
        return (
            f"the first replayed step's losses [{got}] differ from an eager step's [{want}] "
            f"on the same batch (rtol {rtol:g})"
        )
    if len(moments) != len(expected_moments):
        return "the first replayed step did not update AdamW's state as an eager step does"
    pairs = zip(moments, expected_moments, strict=True)
    diff = math.sqrt(float(sum((m - e).square().sum() for m, e in pairs)))
    norm = math.sqrt(float(sum(e.square().sum() for e in expected_moments)))
    if not diff <= rtol * norm:  # NaN fails too
        return (
            f"the first replayed step's gradients (AdamW's first moments) differ from an eager "
            f"step's on the same batch by {diff / norm if norm else math.inf:.2g} relative "
            f"(tolerance {rtol:g})"
        )
    return None


class GuardedStep:
    """A :class:`CapturedStep` checked on its first call against an eager step from the same
    weights and AdamW state on the same batch. If recording raises or the two disagree
    (:func:`disagreement`), ``strict`` raises :class:`GraphCaptureError`; otherwise one
    warning is logged and this and every later step run ``fallback`` (eager) from the same
    weights and AdamW state, so the run goes on as if it had been eager from that step on."""

    def __init__(self, captured: CapturedStep, fallback: EagerStep, *, strict: bool = False):
        self.captured: CapturedStep | None = captured
        self.fallback, self.strict = fallback, strict
        self.checked = False
        self.failure: str | None = None  # why steps run eagerly, once the graph failed

    def __call__(
        self, lengths: torch.Tensor, device_lengths: torch.Tensor, terms: torch.Tensor
    ) -> torch.Tensor:
        """One step; the K losses ``[K]``."""
        if not self.checked:
            return self._first(lengths, device_lengths, terms)
        if self.captured is None:
            return self.fallback(lengths, device_lengths, terms)
        return self.captured(lengths, device_lengths, terms)

    def _first(
        self, lengths: torch.Tensor, device_lengths: torch.Tensor, terms: torch.Tensor
    ) -> torch.Tensor:
        """Eager step, state put back, recorded step replayed, compared; fall back if needed."""
        eager = self.captured.eager
        restore = snapshot(eager.params, eager.optimizer)
        try:
            expected = eager(lengths, device_lengths, terms)
            expected_moments = [m.clone() for m in first_moments(eager.optimizer)]
            restore()
            losses = self.captured(lengths, device_lengths, terms)
            self.failure = disagreement(
                losses, expected, first_moments(eager.optimizer), expected_moments
            )
        except Exception as exc:
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
            self.failure = f"recording or replaying it failed ({type(exc).__name__}: {problem})"
            if self.strict:
                raise self._error() from exc
        self.checked = True
        if self.failure is None:
            return losses
        if self.strict:
            raise self._error()
        restore()
        self.captured = None  # frees the graph and its memory
        logging.getLogger("affine_icl").warning(
            "CUDA graph not used: %s; training goes on with eager steps from the same weights "
            "and AdamW state (to skip the attempt: --config train='{cuda_graphs: off}')",
            self.failure,
        )
        return self.fallback(lengths, device_lengths, terms)

    def _error(self) -> GraphCaptureError:
        return GraphCaptureError(
            f"train.cuda_graphs is on, but the training step cannot run as a CUDA graph: "
            f"{self.failure}; set train.cuda_graphs to auto to fall back to eager steps, or off"
        )
