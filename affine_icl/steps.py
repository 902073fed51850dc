"""One optimizer step of the stacked model: run eagerly, or recorded once as a CUDA graph.

A step is forward, masked loss, backward and AdamW over the stacked weights of K runs
(:mod:`affine_icl.stacked`) on one batch of padded sequences, and returns the K losses on the
device without waiting for them. Both kinds take the training stream's ``(lengths,
device_lengths, terms)`` and share the same weights and optimizer:

* :class:`EagerStep` pads each step only to the longest length among the K runs at that step;
  with ``static_shape=True`` it pads to the longest length of ``data.length_range`` instead,
  the graph's arithmetic run eagerly (the CPU tests use it to check the graph's padding).
* :class:`CapturedStep` records the eager step (statically shaped) as one CUDA graph on its
  first call and replays it after, with the batch copied into the graph's input tensors.
  Recording warms up on a side stream and then restores the weights and AdamW state, so the
  recorded run is the same as one that never warmed up, and a failed recording can carry on
  with :attr:`CapturedStep.eager` from the same weights and AdamW state.
"""

from __future__ import annotations

import torch

from . import stacked
from .config import ModelConfig
from .stacked import masked_losses


class EagerStep:
    """The optimizer step run eagerly; ``static_shape``: always pad to the longest length."""

    def __init__(
        self,
        params: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        cfg: ModelConfig,
        loss_from: int,
        *,
        static_shape: bool = False,
    ):
        self.params, self.optimizer, self.cfg = params, optimizer, cfg
        self.loss_from, self.static_shape = loss_from, static_shape

    def __call__(
        self, lengths: torch.Tensor, device_lengths: torch.Tensor, terms: torch.Tensor
    ) -> torch.Tensor:
        """One step on ``terms [K, batch, longest length + 1, dim]``; the K losses ``[K]``."""
        self.optimizer.zero_grad(set_to_none=True)
        positions = terms.shape[2] - 1 if self.static_shape else int(lengths.max())
        return self.body(terms, device_lengths, positions)

    def body(self, terms: torch.Tensor, lengths: torch.Tensor, positions: int) -> torch.Tensor:
        """Forward, masked loss, backward and AdamW on padded terms; per-run losses ``[K]``."""
        out = stacked.forward(self.params, terms[:, :, :positions], self.cfg)
        losses = masked_losses(out, terms[:, :, 1 : positions + 1], lengths, self.loss_from)
        losses.sum().backward()
        self.optimizer.step()
        return losses.detach()


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
        """Record one step on padded terms of ``shape`` as a CUDA graph (warm-up undone)."""
        params, optimizer = self.eager.params, self.eager.optimizer
        device = next(iter(params.values())).device
        k, b, positions, dim = shape
        self.terms = torch.zeros(k, b, positions, dim, device=device)
        self.lengths = torch.full((k,), positions - 1, device=device)
        saved = {n: p.detach().clone() for n, p in params.items()}
        saved_state = {
            id(p): {n: v.clone() for n, v in s.items()} for p, s in optimizer.state.items()
        }
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                optimizer.zero_grad(set_to_none=True)
                self.eager.body(self.terms, self.lengths, positions - 1)
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.no_grad():  # undo the warm-up: weights and AdamW state as before it
            for n, p in params.items():
                p.copy_(saved[n])
            for p, s in optimizer.state.items():
                for n, v in s.items():
                    if id(p) in saved_state:
                        v.copy_(saved_state[id(p)][n])
                    else:  # a fresh AdamW state is all zeros, step 0 included
                        v.zero_()
        graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self.losses = self.eager.body(self.terms, self.lengths, positions - 1)
        self.graph = graph
