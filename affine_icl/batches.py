"""A row-independent computation over a population, in batches spread over the CPU's threads,
and the one way the analyses use threads: numbers that do not depend on how many.

An intervention's forward pass over the analysis population (1,000 sequences of 14 vectors at
the protocol) is the same computation for every sequence. On the CPU, one call over the whole
population is slow twice over: its MLP activations (14,000 x 3,072 floats, 172 MB) are fresh
memory the kernel pages in at every call, and torch's threads share one huge matmul. Split into
batches of :data:`BATCH_SIZE` sequences, each batch on one thread and :func:`analysis_threads`
batches at once, the pass of layers 1-2 takes 0.38 s instead of 0.70 s (2-core machine, median
of 6; ``bench`` note of issue 31).

The bits do not change: with one thread per batch every matmul is MKL's single-thread kernel,
whose result for a row does not depend on how many rows share the call, so the batches
concatenated are bit for bit the whole population in one call on one thread (checked by
``tests/test_batches.py`` on the project's model; where a BLAS broke this, the test would say
so). Rows here are sequences: a computation that mixes them (a mean over the population) must
run on the concatenation, not inside ``fn``.

The first batch runs alone, on the calling thread, before the others start
(:func:`map_on_threads`, which the shuffled nulls of :mod:`.analysis.chance` use too). With
torch 2.13's CPU build on the project's 2-core machine (an AMX Xeon), a kernel called for the
first time in a process from two threads at once could compute one thread's batch less
exactly: ``t.sqrt()`` of a contiguous ``[100, 14, 1]`` float tensor (a LayerNorm's scale) came
out 2.5e-4 off, relative, in 1 to 5 of 10 fresh processes, never from one thread and never on a
later call; it moved a mean ablation's MSE by up to 6e-6 from one run of the rule to the next.
With the first batch alone, 32 of 32 fresh processes gave the same bits (issue 31's note).

The analyses compute on one torch thread (:func:`use_threads`): the rule's threads run batches
(:func:`map_batches`) and independent items (:func:`map_on_threads`) at once, never one op on
several. Torch's intra-op threads split a reduction or a matmul by their number, so a table
computed on two of them differed from the same table on one in the last bits of its floats (a
paper-shape model run over 250 sequences on 1 and on 2 threads: 40 of its 58 hook points
differed); with every op on one thread, a rule's numbers are the same bits whatever its
``threads`` (``--cores 1``, a laptop, a Slurm job) and its ``cache_batch_size``, and those
settings only say how fast.

On a GPU there is nothing to gain: :func:`map_batches` makes one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from torch import Tensor

#: Sequences per batch: 1,400 rows of 14 vectors; 50 to 100 were equally fast, 200 slower.
BATCH_SIZE = 100

T = TypeVar("T")
A = TypeVar("A")

_threads: int | None = None  # set by use_threads; None: torch's thread count


def use_threads(n: int) -> None:
    """From here on in this process, compute on one torch thread and run ``n`` batches or items
    at once in :func:`map_batches` and :func:`map_on_threads` callers (module docstring): what
    every analysis rule does with its ``threads``."""
    global _threads
    if n < 1:
        raise ValueError(f"use_threads: {n} threads; at least 1")
    _threads = n
    torch.set_num_threads(1)


def analysis_threads() -> int:
    """How many batches or items run at once: :func:`use_threads`'s count, else (a caller that
    never set it) torch's thread count."""
    return _threads if _threads is not None else torch.get_num_threads()


def map_on_threads(fn: Callable[[A], T], items: Sequence[A], threads: int) -> list[T]:
    """``[fn(item) for item in items]`` on ``threads`` Python threads, in order: the first item
    alone on the calling thread, then the others at once (a kernel's first call must not come
    from two threads at once: module docstring), each with the caller's grad mode (a new
    thread's is on). ``fn`` must be safe to call from several threads at once."""
    if not items:
        return []
    first = [fn(items[0])]
    if threads <= 1 or len(items) == 1:
        return first + [fn(item) for item in items[1:]]
    grad = torch.is_grad_enabled()

    def run(item: A) -> T:
        with torch.set_grad_enabled(grad):
            return fn(item)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return first + list(pool.map(run, items[1:]))


def map_batches(fn: Callable[..., T], *xs: Tensor, batch_size: int = BATCH_SIZE) -> list[T]:
    """``fn`` of each batch of ``batch_size`` rows of ``xs`` (dimension 0; several tensors of
    the same rows are split alike, ``fn`` takes one batch of each), in order.

    On the CPU the batches run on :func:`analysis_threads` Python threads with torch's intra-op
    threads set to one meanwhile (restored after), so ``fn`` must be safe to call from several
    threads at once: no state of its own that two batches would share (a forward hook that
    writes somewhere must key what it writes by thread). The first batch runs alone on the
    calling thread before the others start, each with the caller's grad mode
    (:func:`map_on_threads`). On another device ``fn`` gets all of ``xs`` in one call."""
    if len({len(x) for x in xs}) != 1:
        raise ValueError(f"map_batches: tensors of {[len(x) for x in xs]} rows, not one count")
    if xs[0].device.type != "cpu":
        return [fn(*xs)]
    batches = list(zip(*(x.split(batch_size) for x in xs), strict=True))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # also for a single batch: the same bits however it is split
    try:
        return map_on_threads(lambda batch: fn(*batch), batches, analysis_threads())
    finally:
        torch.set_num_threads(before)
