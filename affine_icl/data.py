"""Recurrence data (paper section 3.1), vectorised over the batch, on any device.

A sequence of length ``L`` has terms ``a_0 .. a_L`` with ``a_n = c a_{n-1} + d`` (the paper's
affine task; ``data.task`` picks another family of :mod:`affine_icl.tasks`); the model reads
``a_0 .. a_{L-1}`` and must output ``a_1 .. a_L``. ``a_0`` and ``d`` are vectors with entries
uniform in ``init_range``; ``c`` is one scalar per sequence, uniform in ``c_range``. All terms and
``d`` are then divided by ``m / U(norm_range)`` where ``m`` is the largest norm among the *inputs*
``a_0 .. a_{L-1}``, so the largest input norm lies in ``norm_range`` and the recurrence still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from .config import DataConfig
from .errors import unreadable
from .tasks import task_of, uniform


@dataclass
class Batch:
    """A batch of normalised sequences that all have the same length ``L``.

    ``terms`` is ``[B, L+1, D]``; ``c`` is ``[B]`` (the affine coefficient, or another family's
    :meth:`~affine_icl.tasks.base.Task.summary_c`); ``d`` is ``[B, D]`` (normalised); ``scale`` is
    the divisor applied to the raw sequence, ``[B]``; ``coefs`` ``[B, m]`` the coefficients of the
    recurrence the normalised terms satisfy (for the affine task ``c[:, None]``).
    """

    terms: torch.Tensor
    c: torch.Tensor
    d: torch.Tensor
    scale: torch.Tensor
    coefs: torch.Tensor

    @property
    def inputs(self) -> torch.Tensor:
        return self.terms[:, :-1]

    @property
    def targets(self) -> torch.Tensor:
        return self.terms[:, 1:]

    @property
    def length(self) -> int:
        return self.terms.shape[1] - 1

    def __len__(self) -> int:
        return self.terms.shape[0]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device) for t in (self.terms, self.c, self.d, self.scale, self.coefs)))


def sample_batch(
    cfg: DataConfig,
    batch_size: int,
    length: int,
    generator: torch.Generator,
    *,
    c: torch.Tensor | None = None,
) -> Batch:
    """Draw ``batch_size`` normalised sequences of ``length`` inputs on ``generator``'s device.

    ``c`` may be given (shape ``[batch_size]``) to fix the linear coefficient, as the
    example-sequence figure does; otherwise it is drawn from ``cfg.c_range``.
    """
    device, task = generator.device, task_of(cfg)
    raw, coefs, d = task.draw_raw((batch_size,), length, generator, c=c)
    target_norm = uniform((batch_size,), cfg.norm_range, generator, device)
    terms, scale = normalised_terms(raw, target_norm, torch.tensor(length, device=device))
    coefs = task.normalised_coefs(coefs, scale)
    return Batch(terms, task.summary_c(coefs), d / scale[..., None], scale, coefs)


def safe_norm(x: torch.Tensor) -> torch.Tensor:
    """``x.norm(dim=-1)`` without overflow: where the sum of squares passes the dtype's range
    (terms near 1e19 in float32) the norm is taken of ``x`` divided by its largest entry and
    multiplied back. Elsewhere it is ``x.norm(dim=-1)`` bit for bit."""
    norm = x.norm(dim=-1)
    largest = x.abs().amax(dim=-1)
    scaled = largest * (x / largest.clamp_min(torch.finfo(x.dtype).tiny)[..., None]).norm(dim=-1)
    return torch.where(torch.isfinite(norm), norm, scaled)


def normalised_terms(
    raw: torch.Tensor, target_norm: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw terms ``a_0 .. a_T`` ``[..., T + 1, D]`` normalised per sequence.

    ``target_norm``: ``[...]``; ``lengths`` (broadcastable to ``[...]``): each sequence's number
    of inputs ``L``. Every sequence is divided by ``max_norm / target_norm``, where ``max_norm`` is
    the largest norm among its inputs ``a_0 .. a_{L-1}``; terms after ``a_L`` are set to zero
    (padding). Returns the terms and the divisor ``scale`` ``[...]``.
    """
    index = torch.arange(raw.shape[-2], device=raw.device)
    lengths = lengths[..., None]
    max_norm = safe_norm(raw).masked_fill(index >= lengths, 0.0).amax(dim=-1)
    scale = max_norm / target_norm
    terms = (raw / scale[..., None, None]).masked_fill((index > lengths)[..., None], 0.0)
    return terms, scale


#: Steps drawn at once by :class:`TrainingStream`; part of the stream's definition (a
#: different chunk size gives different data for the same seed).
STREAM_CHUNK = 100


class TrainingStream:
    """The training data of K runs: per run and step, a length and a batch of sequences.

    Run ``k`` with seed ``s`` draws its lengths on a CPU generator seeded ``s + 2`` (lengths
    pick tensor shapes, so the host knows them without a device sync) and its sequence contents
    on a generator on ``device`` seeded ``s + 1``, :data:`STREAM_CHUNK` steps at a time in one
    vectorised call. A run's data depend only on its own seed, never on which runs it is
    batched with. Terms are padded with zeros to ``length_range[1] + 1`` positions.

    :meth:`run_state` records the generators as they were before the current chunk was drawn,
    so a resumed stream redraws that chunk and continues with identical data.
    """

    def __init__(
        self, cfg: DataConfig, batch_size: int, seeds: list[int], device: torch.device | str
    ):
        self.cfg, self.batch_size, self.device = cfg, batch_size, torch.device(device)
        self.length_gens = [torch.Generator().manual_seed(s + 2) for s in seeds]
        self.data_gens = [torch.Generator(device=self.device).manual_seed(s + 1) for s in seeds]
        self.chunk = -1  # index of the chunk held in memory
        self._states = self._gen_states()  # generator states before the held chunk

    def _gen_states(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [
            (lg.get_state(), dg.get_state())
            for lg, dg in zip(self.length_gens, self.data_gens, strict=True)
        ]

    def _draw(self, chunk: int) -> None:
        self._states = self._gen_states()
        cfg, n, b = self.cfg, STREAM_CHUNK, self.batch_size
        lo, hi = cfg.length_range
        task = task_of(cfg)
        lengths, terms = [], []
        for length_gen, gen in zip(self.length_gens, self.data_gens, strict=True):
            run_lengths = torch.randint(lo, hi + 1, (n,), generator=length_gen)
            raw = task.draw_raw((n, b), hi, gen)[0]
            target_norm = uniform((n, b), cfg.norm_range, gen, self.device)
            on_device = run_lengths.to(self.device)[:, None]
            terms.append(normalised_terms(raw, target_norm, on_device)[0])
            lengths.append(run_lengths)
        self.lengths = torch.stack(lengths, dim=1)  # [n, K] on the CPU
        self.device_lengths = self.lengths.to(self.device)
        self.terms = torch.stack(terms, dim=1)  # [n, K, B, hi + 1, D]
        self.chunk = chunk

    def step(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Data of 0-based ``step``: lengths ``[K]`` (CPU), the same on the device, and the
        padded terms ``[K, B, length_range[1] + 1, D]``. Steps are asked for in order."""
        chunk, i = divmod(step, STREAM_CHUNK)
        while self.chunk < chunk:  # after a resume: redraw the saved chunk, then go on
            self._draw(self.chunk + 1)
        if chunk != self.chunk:
            raise RuntimeError(f"stream step {step} is behind the held chunk {self.chunk}")
        return self.lengths[i], self.device_lengths[i], self.terms[i]

    def run_state(self, k: int) -> dict:
        """Enough to redraw run ``k``'s held chunk: its index and the generator states before it."""
        length_state, data_state = self._states[k]
        return {"chunk": max(self.chunk, 0), "length_gen": length_state, "data_gen": data_state}

    def load_run_states(self, states: list[dict]) -> None:
        """Restore every run from :meth:`run_state` dicts; all must hold the same chunk."""
        chunks = {s["chunk"] for s in states}
        if len(chunks) != 1:
            raise ValueError(f"runs are at different stream chunks {sorted(chunks)}")
        for length_gen, data_gen, s in zip(self.length_gens, self.data_gens, states, strict=True):
            length_gen.set_state(s["length_gen"])
            data_gen.set_state(s["data_gen"])
        self.chunk = chunks.pop() - 1
        self._states = self._gen_states()


def lengths(cfg: DataConfig) -> range:
    lo, hi = cfg.length_range
    return range(lo, hi + 1)


# --------------------------------------------------------------------------- evaluation population

VECTOR = pa.float32()


def _vector_type(dim: int) -> pa.DataType:
    return pa.list_(VECTOR, dim)


def population_table(cfg: DataConfig, per_length: int | None = None) -> pa.Table:
    """The fixed evaluation population: ``per_length`` sequences of every length, seeded.

    One row per sequence: ``sample`` (global id), ``length``, ``c``, ``scale``, ``d`` (a fixed
    size float32 list) and ``terms`` (a list of ``length + 1`` vectors ``a_0 .. a_L``); for a
    task other than the affine one also ``coefs``, the normalised coefficients (a fixed size
    list), and ``c`` is then :meth:`~affine_icl.tasks.base.Task.summary_c` of them.
    """
    per_length = per_length or cfg.eval_per_length
    generator = torch.Generator().manual_seed(cfg.eval_seed)
    vec = _vector_type(cfg.vector_dim)
    names = ("length", "c", "scale", "d", "terms")
    columns: dict[str, list] = {k: [] for k in (names if task_of(cfg).paper else (*names, "coefs"))}
    for length in lengths(cfg):
        batch = sample_batch(cfg, per_length, length, generator)
        columns["length"].append(pa.array(np.full(per_length, length, np.int32)))
        columns["c"].append(pa.array(batch.c.numpy().astype(np.float32)))
        columns["scale"].append(pa.array(batch.scale.numpy().astype(np.float32)))
        columns["d"].append(_fixed_lists(batch.d.numpy(), vec))
        terms = batch.terms.numpy().astype(np.float32)  # [n, L+1, D]
        inner = _fixed_lists(terms.reshape(-1, cfg.vector_dim), vec)
        offsets = pa.array(np.arange(per_length + 1, dtype=np.int32) * (length + 1))
        columns["terms"].append(pa.ListArray.from_arrays(offsets, inner))
        if "coefs" in columns:
            coefs = batch.coefs.numpy()
            columns["coefs"].append(_fixed_lists(coefs, pa.list_(VECTOR, coefs.shape[1])))
    arrays = {k: pa.concat_arrays(v) for k, v in columns.items()}
    n = len(arrays["length"])
    return pa.table({"sample": pa.array(np.arange(n, dtype=np.int64)), **arrays})


def _fixed_lists(matrix: np.ndarray, vec_type: pa.DataType) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, type=vec_type)


def batches_from_table(table: pa.Table, per_length: int | None = None) -> dict[int, Batch]:
    """Group a population table back into one :class:`Batch` per length (CPU, float32).

    ``per_length`` keeps only the first that many sequences of each length.
    """
    out: dict[int, Batch] = {}
    length_col = table.column("length").to_numpy()
    for length in np.unique(length_col):
        rows = np.flatnonzero(length_col == length)
        if per_length is not None:
            rows = rows[:per_length]
        sub = table.take(pa.array(rows))
        dim = sub.schema.field("d").type.list_size
        terms = sub.column("terms").combine_chunks().flatten().flatten().to_numpy()
        d = sub.column("d").combine_chunks().flatten().to_numpy()
        c = torch.from_numpy(sub.column("c").to_numpy().copy())
        if "coefs" in sub.column_names:
            m = sub.schema.field("coefs").type.list_size
            coefs = sub.column("coefs").combine_chunks().flatten().to_numpy().reshape(len(rows), m)
            coefs = torch.from_numpy(coefs.copy())
        else:
            coefs = c[:, None]
        out[int(length)] = Batch(
            terms=torch.from_numpy(terms.reshape(len(rows), int(length) + 1, dim).copy()),
            c=c,
            d=torch.from_numpy(d.reshape(len(rows), dim).copy()),
            scale=torch.from_numpy(sub.column("scale").to_numpy().copy()),
            coefs=coefs,
        )
    return out


def write_parquet(table: pa.Table, path: Path | str, metadata: dict[str, str] | None = None):
    """Write ``table`` with zstd compression, adding ``metadata`` to the schema metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata:
        merged = {
            **(table.schema.metadata or {}),
            **{k.encode(): v.encode() for k, v in metadata.items()},
        }
        table = table.replace_schema_metadata(merged)
    pq.write_table(table, path, compression="zstd")


def read_parquet(path: Path | str, what: str = "table") -> pa.Table:
    """A whole Parquet file; an unreadable one is named with the way to rebuild it."""
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(what, path, exc) from exc


def heldout_batches(cfg: DataConfig, per_length: int | None = None) -> dict[int, Batch]:
    """The evaluation population, drawn again from ``cfg`` (seeded, float32 as on disk), as one
    :class:`Batch` per length (``per_length`` of each): the same sequences as
    ``results/data/eval_population.parquet``, so training needs no file that a touch or a
    rewrite could make Snakemake retrain from."""
    return batches_from_table(population_table(cfg), per_length)


# --------------------------------------------------------------------------- example sequences

#: The three regimes of Figure 1, as (name, c interval).
SEQUENCE_TYPES: tuple[tuple[str, tuple[float, float]], ...] = (
    ("oscillating (c < 0)", (-2.0, 0.0)),
    ("decaying (0 < c < 1)", (0.0, 1.0)),
    ("growing (c > 1)", (1.0, 2.0)),
)


def example_sequences(cfg: DataConfig, length: int | None = None) -> pa.Table:
    """One example sequence per regime of Figure 1, in long form.

    Each c is drawn uniformly from the regime's interval intersected with ``cfg.c_range``;
    a regime the configured range excludes is skipped. Columns: ``sequence_type``, ``c``,
    ``n`` (term index), ``dim`` and ``value``.
    """
    length = length or cfg.length_range[1]
    generator = torch.Generator().manual_seed(cfg.eval_seed + 1)
    frames = []
    for name, (lo, hi) in SEQUENCE_TYPES:
        lo, hi = max(lo, cfg.c_range[0]), min(hi, cfg.c_range[1])
        if lo >= hi:
            continue
        c = torch.rand(1, generator=generator) * (hi - lo) + lo
        terms = sample_batch(cfg, 1, length, generator, c=c).terms[0].numpy()  # [L+1, D]
        n, dim = np.meshgrid(np.arange(terms.shape[0]), np.arange(terms.shape[1]), indexing="ij")
        frames.append(
            {
                "sequence_type": np.full(terms.size, name),
                "c": np.full(terms.size, float(c), np.float32),
                "n": n.ravel().astype(np.int32),
                "dim": dim.ravel().astype(np.int32),
                "value": terms.ravel().astype(np.float32),
            }
        )
    return pa.table({k: np.concatenate([f[k] for f in frames]) for k in frames[0]})


# --------------------------------------------------------------------------- the training log


def collapse_warning(log: list[dict]) -> str | None:
    """A warning when the final held-out MSE is no better than the first evaluation's: the run
    collapsed or never learned (too high a learning rate does this without a NaN)."""
    evals = [r for r in log if r["heldout_mse"] == r["heldout_mse"]]
    if len(evals) < 2 or evals[-1]["heldout_mse"] < evals[0]["heldout_mse"]:
        return None
    first, last = evals[0], evals[-1]
    return (
        f"held-out MSE {last['heldout_mse']:.3g} at step {last['step']} is no better than "
        f"{first['heldout_mse']:.3g} at step {first['step']}: training collapsed or did not "
        "learn (check train.lr); the analyses of this run describe an untrained model"
    )
