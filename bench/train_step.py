"""Time training steps of the paper's model: an eager reference loop against the project's path.

    python bench/train_step.py                      # CPU, or CUDA when available
    python bench/train_step.py --device cuda --seeds 8 --json bench.json
    python bench/train_step.py --device cuda --no-timing --to-mse 1e-4 --max-seconds 300

In one process and on the same data stream (seed 0), the script alternates blocks of steps of

* ``reference``: the yardstick, kept here on purpose: a plain eager loop over the hooked
  :class:`~affine_icl.model.VectorTransformer` (per-head einsums, explicit softmax),
  ``torch.optim.AdamW`` with its default implementation, ``F.mse_loss`` on the sliced outputs;
* ``project``: :class:`affine_icl.train.Trainer` with one run, exactly as ``snakemake`` trains
  (stacked functional forward, fused AdamW; on CUDA the whole step replayed as a CUDA graph,
  ``train.cuda_graphs: auto``: the output says whether it replayed or fell back to eager);
* ``batched xK`` (``--seeds K``): the same trainer with K seeds in one stacked model,
* ``compiled`` (``--compiled``): the project path with its forward and loss through
  ``torch.compile`` (on CUDA inside the same CUDA graph; on the CPU statically shaped, every
  step padded to the longest length as a graph pads it); compiled during the warm-up, whose
  seconds are printed,
* ``plain``: the second yardstick, what a user would write instead (:class:`PlainLoop`): the
  section 3.2 model in plain PyTorch (one fused QKV ``nn.Linear`` per layer,
  ``F.scaled_dot_product_attention``, ``nn.LayerNorm``, fused AdamW); on CUDA the whole step
  recorded by hand as one CUDA graph per sequence length (``plain graphed``), on the CPU eager,

and prints the median ms/step of each, their ratio, the FLOP rate reached and the machine's
measured matmul rate. Before the timing it counts the ops one eager step dispatches at the
longest length, views left out (:func:`ops_per_step`): on a GPU about the kernels it
launches, which a CUDA graph replays without the host, each still a launch on the device.
Alternating blocks keep a drifting machine (other load, clock changes) from favouring one path.
``--to-mse`` then trains the project path from scratch until the held-out MSE reaches the
target (checked every ``--eval-every`` steps, at most ``--max-steps`` steps and
``--max-seconds`` seconds) and reports the steps and time it took; ``--no-timing`` skips the
timing. ``--json`` writes the results after the timing and again after ``--to-mse``, so a run
stopped during the latter keeps the former.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from affine_icl.config import RunConfig
from affine_icl.data import TrainingStream, batches_from_table, population_table
from affine_icl.model import VectorTransformer
from affine_icl.train import Trainer, held_out_mse


class ReferenceLoop:
    """Plain eager training of the hooked model: the benchmark's yardstick."""

    def __init__(self, cfg: RunConfig, device: torch.device):
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.train.seed)
        self.model = VectorTransformer(cfg.model).init_weights(gen).to(device).train()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.train.lr,
            betas=cfg.train.betas,
            weight_decay=cfg.train.weight_decay,
        )
        self.stream = TrainingStream(cfg.data, cfg.train.batch_size, [cfg.train.seed], device)
        self.step = 0

    def train_step(self) -> torch.Tensor:
        lengths, _, terms = self.stream.step(self.step)
        terms = terms[0, :, : int(lengths[0]) + 1]
        lf = self.cfg.train.loss_from_index
        out = self.model(terms[:, :-1])
        loss = F.mse_loss(out[:, lf:], terms[:, 1:][:, lf:])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach()


class PlainBlock(nn.Module):
    """A pre-LayerNorm block in plain PyTorch: fused QKV, causal SDPA, ReLU MLP."""

    def __init__(self, cfg: RunConfig):
        super().__init__()
        m = cfg.model
        self.heads, self.d_head = m.n_heads, m.d_head
        self.ln1, self.ln2 = nn.LayerNorm(m.d_model), nn.LayerNorm(m.d_model)
        self.qkv = nn.Linear(m.d_model, 3 * m.n_heads * m.d_head)
        self.out = nn.Linear(m.n_heads * m.d_head, m.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(m.d_model, m.d_mlp), nn.ReLU(), nn.Linear(m.d_mlp, m.d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, self.d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [b, heads, n, d_head]
        z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.out(z.transpose(1, 2).reshape(b, n, -1))
        return x + self.mlp(self.ln2(x))


class PlainModel(nn.Module):
    """Section 3.2's model as plain PyTorch: linear embedding of the vectors (no bias), learned
    positions, pre-LayerNorm blocks, final LayerNorm, linear read-out. Same sizes and FLOPs as
    the project's model, not its weights or initialisation: a yardstick for speed only."""

    def __init__(self, cfg: RunConfig):
        super().__init__()
        m, d = cfg.model, cfg.data.vector_dim
        self.embed = nn.Linear(d, m.d_model, bias=False)
        self.pos = nn.Parameter(torch.randn(m.n_ctx, m.d_model) * 0.02)
        self.blocks = nn.ModuleList(PlainBlock(cfg) for _ in range(m.n_layers))
        self.ln_final = nn.LayerNorm(m.d_model)
        self.unembed = nn.Linear(m.d_model, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x) + self.pos[: x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.ln_final(x))


class PlainLoop:
    """The second yardstick: :class:`PlainModel` trained on the same data stream with AdamW
    (fused, as a user tuning for speed would), eager on the CPU; on CUDA each sequence length's
    whole step (forward, backward, AdamW) recorded by hand as one CUDA graph the first time the
    length comes up (after three warm-up steps on a side stream, as PyTorch's CUDA-graph notes
    do it), then replayed."""

    def __init__(self, cfg: RunConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.train.seed)
        self.model = PlainModel(cfg).to(device).train()
        self.graphed = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.train.lr,
            betas=cfg.train.betas,
            weight_decay=cfg.train.weight_decay,
            fused=True,
            capturable=self.graphed,
        )
        self.stream = TrainingStream(cfg.data, cfg.train.batch_size, [cfg.train.seed], device)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.step = 0

    def _loss(self, terms: torch.Tensor) -> torch.Tensor:
        lf = self.cfg.train.loss_from_index
        out = self.model(terms[:, :-1])
        loss = F.mse_loss(out[:, lf:], terms[:, 1:][:, lf:])
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _eager(self, terms: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        return self._loss(terms)

    def _record(
        self, terms: torch.Tensor
    ) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        static = terms.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._eager(static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            loss = self._loss(static)
        return graph, static, loss

    def train_step(self) -> torch.Tensor:
        lengths, _, terms = self.stream.step(self.step)
        terms = terms[0, :, : int(lengths[0]) + 1]
        self.step += 1
        if not self.graphed:
            return self._eager(terms)
        n = terms.shape[1]
        if n not in self.graphs:
            self.graphs[n] = self._record(terms)
        graph, static, loss = self.graphs[n]
        static.copy_(terms)
        graph.replay()
        return loss


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_block(step, steps: int, device: torch.device) -> float:
    """Seconds per step over ``steps`` steps (device synchronised at both ends)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def step_flops(cfg: RunConfig, length: int, models: int = 1) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward) at one length."""
    m, d, f = cfg.model, cfg.data.vector_dim, cfg.model.d_mlp
    hd = m.n_heads * m.d_head
    tokens = cfg.train.batch_size * length
    dense = (
        d * m.d_model
        + m.n_layers * (m.d_model * 3 * hd + hd * m.d_model + 2 * m.d_model * f)
        + m.d_model * d
    )
    attention = m.n_layers * 2 * cfg.train.batch_size * m.n_heads * length * length * m.d_head
    return models * 3 * (2 * tokens * dense + 2 * attention)


def matmul_rate(device: torch.device, shape: tuple[int, int, int], repeats: int = 50) -> float:
    """Measured GFLOP/s of an ``[a, b] @ [b, c]`` float32 matmul."""
    a, b, c = shape
    x, w = torch.randn(a, b, device=device), torch.randn(b, c, device=device)
    for _ in range(5):
        x @ w
    seconds = time_block(lambda: x @ w, repeats, device)
    return 2 * a * b * c / seconds / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    ap.add_argument("--blocks", type=int, default=8, help="timed blocks per path (default 8)")
    ap.add_argument("--block-steps", type=int, default=25, help="steps per block (default 25)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps per path first")
    ap.add_argument("--seeds", type=int, default=0, help="also time K seeds batched (0: skip)")
    ap.add_argument("--compiled", action="store_true", help="also time the step with torch.compile")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--no-timing", action="store_true", help="skip the timing (with --to-mse)")
    ap.add_argument(
        "--to-mse",
        type=float,
        default=None,
        help="then train the project path until held-out MSE <= this",
    )
    ap.add_argument("--max-steps", type=int, default=100_000, help="limit for --to-mse")
    ap.add_argument(
        "--max-seconds", type=float, default=None, help="time limit for --to-mse (default none)"
    )
    ap.add_argument(
        "--eval-every", type=int, default=None, help="--to-mse: steps between held-out MSEs"
    )
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = args.device
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if spec == "auto" else spec
    )
    cfg = RunConfig()
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu"
    )
    print(
        f"device {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    result = {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if not args.no_timing:
        result.update(time_paths(cfg, device, args))
        write_json(args.json, result)
    if args.to_mse is not None:
        result["to_mse"] = train_to(
            cfg, device, args.to_mse, args.max_steps, args.max_seconds, args.eval_every
        )
        write_json(args.json, result)


def write_json(path: str | None, result: dict) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(result, fh, indent=2)


#: Ops that make a view or record a profiler range: no kernel on any device.
NO_KERNEL = {
    "view", "_unsafe_view", "reshape", "_reshape_alias", "permute", "transpose", "t",
    "expand", "as_strided", "detach", "alias", "split", "split_with_sizes", "unbind", "select",
    "slice", "squeeze", "unsqueeze", "unflatten", "narrow", "lift_fresh",
    "_record_function_enter_new", "_record_function_exit",
}  # fmt: skip


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in NO_KERNEL:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def ops_per_step(step: Callable[[], object]) -> Counter[str]:
    """The ops one call of ``step`` dispatches (forward, backward and optimizer: autograd's
    backward ops included), by name, views and profiler ranges left out."""
    counter = _OpCounter()
    with counter:
        step()
    return counter.ops


def seed_configs(cfg: RunConfig, seeds: int) -> list[RunConfig]:
    """``cfg`` with seeds 0 .. ``seeds - 1``: the runs the batched path trains together."""
    return [replace(cfg, train=replace(cfg.train, seed=s)) for s in range(seeds)]


def count_ops(cfg: RunConfig, device: torch.device, seeds: int) -> dict[str, int]:
    """Ops per eager step at the longest length: the project's step (what its CUDA graph
    records), ``seeds`` seeds batched, and the plain model's."""
    longest = cfg.data.length_range[1]
    trainers = {"project": [cfg]}
    if seeds:
        trainers[f"batched x{seeds}"] = seed_configs(cfg, seeds)
    counts = {}
    for label, cfgs in trainers.items():
        trainer = Trainer(cfgs, device, capture=False, static_shape=True)
        for _ in range(2):  # AdamW's state exists from the first step on
            trainer.train_step()
        counts[label] = ops_per_step(trainer.train_step)
    plain = PlainLoop(cfg, device)
    terms = plain.stream.step(0)[2][0, :, : longest + 1]
    plain._eager(terms)
    counts["plain"] = ops_per_step(lambda: plain._eager(terms))
    print(f"\nops dispatched per eager step at length {longest} (views left out):")
    for label, ops in counts.items():
        top = ", ".join(f"{n} {c}" for n, c in ops.most_common(5))
        print(f"  {label:<12}{sum(ops.values()):5d}  ({top}, ...)")
    return {label: sum(ops.values()) for label, ops in counts.items()}


def time_paths(cfg: RunConfig, device: torch.device, args: argparse.Namespace) -> dict:
    """Time the reference, project and batched paths in alternating blocks; print and return
    ms/step, FLOP rates and how the trainer's steps ran (graph or eager)."""
    plain = PlainLoop(cfg, device)
    paths = {
        "reference": ReferenceLoop(cfg, device),
        "project": Trainer([cfg], device),
        "plain graphed" if plain.graphed else "plain": plain,
    }
    if args.seeds:
        paths[f"batched x{args.seeds}"] = Trainer(seed_configs(cfg, args.seeds), device)
    compiled = "compiled" if device.type == "cuda" else "compiled 14"  # on a CPU padded to 14
    if args.compiled:
        paths[compiled] = Trainer([cfg], device, static_shape=device.type != "cuda", compiled=True)
    ops = count_ops(cfg, device, args.seeds)
    # every path the same untimed steps, so all time the same lengths; where the plain path
    # records a graph per length, enough that every length has come up (100 steps miss one of
    # the 12 with probability 0.002; a graph recorded in a timed block is one slow block)
    warmup = max(args.warmup, 100) if plain.graphed else args.warmup
    warmup_s = {}
    for label, loop in list(paths.items()):
        sync(device)
        t0 = time.perf_counter()
        try:
            for _ in range(warmup):
                loop.train_step()
        except Exception as exc:  # torch.compile needs a C compiler (and Triton on CUDA)
            if label != compiled:
                raise
            print(f"{compiled}: left out, compiling failed: {type(exc).__name__}: {exc}")
            del paths[label]
            continue
        sync(device)
        warmup_s[label] = time.perf_counter() - t0
    if compiled in paths:
        print(f"{compiled}: {warmup_s[compiled]:.1f} s for its {warmup} warm-up steps (compiling)")
    times: dict[str, list[float]] = {k: [] for k in paths}
    first_step = warmup
    for _ in range(args.blocks):
        for label, loop in paths.items():
            times[label].append(time_block(loop.train_step, args.block_steps, device))
    steps = range(first_step, first_step + args.blocks * args.block_steps)
    stream = TrainingStream(cfg.data, 1, [cfg.train.seed], "cpu")
    lengths = [int(stream.step(s)[0][0]) for s in range(steps.stop)][first_step:]
    flops = statistics.fmean(step_flops(cfg, n) for n in lengths)

    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    tokens = cfg.train.batch_size * statistics.fmean(lengths)
    rates = {
        "matmul 2048^3": matmul_rate(device, (2048, 2048, 2048)),
        f"matmul {round(tokens)}x{cfg.model.d_model}x{cfg.model.d_mlp} (MLP)": matmul_rate(
            device, (round(tokens), cfg.model.d_model, cfg.model.d_mlp)
        ),
    }
    print(
        f"\n{len(lengths)} timed steps per path in {args.blocks} alternating blocks; "
        f"mean length {statistics.fmean(lengths):.1f}, {flops / 1e9:.2f} GFLOP per step and seed"
    )
    print(f"{'path':<14}{'ms/step':>9}{'min':>8}{'max':>8}{'vs ref':>8}{'GFLOP/s':>9}")
    for label, value in ms.items():
        k = args.seeds if label.startswith("batched") else 1
        print(
            f"{label:<14}{value:9.2f}{1e3 * min(times[label]):8.2f}{1e3 * max(times[label]):8.2f}"
            f"{ms['reference'] / value:8.2f}{k * flops / value / 1e6:9.1f}"
        )
    for label, rate in rates.items():
        print(f"measured {label}: {rate:.1f} GFLOP/s")
    print(
        f"project path: {flops / ms['project'] / 1e6 / rates[list(rates)[1]]:.0%} of the MLP "
        "matmul rate (the floor of this workload)"
    )
    plain_label = next(k for k in ms if k.startswith("plain"))
    print(
        f"project path: {ms['project'] / ms[plain_label]:.2f}x the time of the {plain_label} "
        "model's step"
    )
    if args.seeds:
        label = f"batched x{args.seeds}"
        print(
            f"{label}: {ms[label] / ms['project']:.2f}x the time of one seed for {args.seeds} seeds"
        )
    steps_ran = {k: loop.graph_status() for k, loop in paths.items() if isinstance(loop, Trainer)}
    if plain.graphed:
        steps_ran[plain_label] = f"{len(plain.graphs)} CUDA graphs recorded by hand, one per length"
    for label, status in steps_ran.items():
        print(f"{label} steps: {status}")
    return {
        "ms_per_step": ms,
        "ops_per_step": ops,
        "warmup_s": warmup_s,
        "gflop_per_step": flops / 1e9,
        "matmul_gflops": rates,
        "steps_ran_as": steps_ran,
    }


def train_to(
    cfg: RunConfig,
    device: torch.device,
    target: float,
    max_steps: int,
    max_seconds: float | None = None,
    eval_every: int | None = None,
) -> dict:
    """Train the project path from scratch until the held-out MSE is at most ``target``,
    evaluated every ``eval_every`` steps (default ``train.eval_every``), for at most
    ``max_steps`` steps and ``max_seconds`` seconds (checked at each evaluation)."""
    eval_batches = batches_from_table(population_table(cfg.data, cfg.train.eval_per_length))
    trainer = Trainer([cfg], device)
    every = eval_every or cfg.train.eval_every
    sync(device)
    t0 = time.perf_counter()
    mse, seconds, evaluations = float("inf"), 0.0, []
    while trainer.step < max_steps and mse > target:
        if max_seconds is not None and seconds >= max_seconds:
            break
        for _ in range(min(every, max_steps - trainer.step)):
            trainer.train_step()
        mse = float(
            held_out_mse(trainer.params, eval_batches, cfg.model, cfg.train.loss_from_index)[0]
        )
        seconds = time.perf_counter() - t0
        evaluations.append([trainer.step, mse, round(seconds, 3)])
        print(f"  step {trainer.step}: held-out MSE {mse:.3e} ({seconds:.0f} s)", flush=True)
    reached = mse <= target
    limit = "" if reached else (" (time limit)" if trainer.step < max_steps else " (step limit)")
    print(
        f"held-out MSE {'reached' if reached else 'did not reach'} {target:g}{limit} "
        f"after {trainer.step} steps, {seconds:.0f} s; steps: {trainer.graph_status()}"
    )
    return {
        "target": target,
        "reached": reached,
        "steps": trainer.step,
        "seconds": seconds,
        "heldout_mse": mse,
        "steps_ran_as": trainer.graph_status(),
        "evaluations": evaluations,  # [step, held-out MSE, seconds]
    }


if __name__ == "__main__":
    main()
