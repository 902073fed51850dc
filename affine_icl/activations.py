"""Activations for interpretability analyses, stored as Parquet and read back by layer and column.

:func:`write_activation_cache` runs the model's hooked attention path over a population of
sequences that all have the same length ``L`` and writes one zstd-compressed Parquet file per hook
family into a directory. Every file holds the caller's metadata (e.g. the run's ``config_hash``)
in its schema metadata, plus ``activations.family`` and ``activations.model_signature`` (a
fingerprint of the weights that produced the activations, checked by
:func:`load_activation_cache`).

Schemas (``d`` = ``d_model``, ``v`` = ``d_vocab``, ``vec[k]`` = ``fixed_size_list<float32>[k]``;
keys ``layer`` int8, ``sample`` int64, ``position`` int16, ``head`` int8) and the hooks they hold::

    resid        layer, sample, position,
                 pre, mid, post vec[d]      blocks.{l}.hook_resid_pre / _mid / _post
                 embed, pos_embed vec[d]    hook_embed, hook_pos_embed: on layer-0 rows, else null
    head_result  layer, sample, position, head, result vec[d]     blocks.{l}.attn.hook_result
    pattern      layer, sample, position, head, pattern vec[L]    blocks.{l}.attn.hook_pattern
                 (position is the query position; the list holds the weights over the key
                 positions 0..L-1, exactly zero above the diagonal)
    mlp_out      layer, sample, position, mlp_out vec[d]          blocks.{l}.hook_mlp_out
    ln_scale     sample, position, ln1_l{l}, ln2_l{l} float32 for every layer l,
                 ln_final float32           blocks.{l}.ln1/ln2.hook_scale, ln_final.hook_scale
    outputs      sample, position, output vec[v], target vec[v]   model output, training target

Rows are sorted by (layer, sample, position, head). The four layer families are written layer by
layer, one row group per (layer, batch of samples), so every row group holds a single layer and
its ``layer`` statistics have min == max: a read filtered on ``layer`` touches only that layer's
row groups, and a column projection decodes only those columns. ``hook_attn_out`` is not stored:
it is the sum of the head results plus ``b_O``, rebuilt on loading.
"""

from __future__ import annotations

import json
import math
import threading
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import ActivationCache

from .batches import map_batches
from .errors import unreadable
from .model import Sequences, VectorTransformer

FAMILIES = ("resid", "head_result", "pattern", "mlp_out", "ln_scale", "outputs")
#: the families stored per layer (the others are per sequence position)
LAYER_FAMILIES = ("resid", "head_result", "pattern", "mlp_out")

FAMILY_KEY = "activations.family"
MODEL_KEY = "activations.model_signature"

#: resid column -> TransformerLens hook name (``{l}`` is the layer).
RESID_HOOKS = {
    "pre": "blocks.{l}.hook_resid_pre",
    "mid": "blocks.{l}.hook_resid_mid",
    "post": "blocks.{l}.hook_resid_post",
}
#: resid columns filled on layer-0 rows only -> hook name.
EMBED_HOOKS = {"embed": "hook_embed", "pos_embed": "hook_pos_embed"}
RESULT_HOOK = "blocks.{l}.attn.hook_result"
PATTERN_HOOK = "blocks.{l}.attn.hook_pattern"
MLP_OUT_HOOK = "blocks.{l}.hook_mlp_out"
ATTN_OUT_HOOK = "blocks.{l}.hook_attn_out"
KEY_TYPES = {"layer": pa.int8(), "sample": pa.int64(), "position": pa.int16(), "head": pa.int8()}


# --------------------------------------------------------------------------- schemas


def _vector(width: int) -> pa.DataType:
    return pa.list_(pa.float32(), width)


def _keys(*names: str) -> list[pa.Field]:
    return [pa.field(name, KEY_TYPES[name], nullable=False) for name in names]


def ln_columns(n_layers: int) -> dict[str, str]:
    """ln_scale column -> hook name, for every LayerNorm of an ``n_layers`` model."""
    columns = {}
    for layer in range(n_layers):
        columns[f"ln1_l{layer}"] = f"blocks.{layer}.ln1.hook_scale"
        columns[f"ln2_l{layer}"] = f"blocks.{layer}.ln2.hook_scale"
    columns["ln_final"] = "ln_final.hook_scale"
    return columns


def family_schemas(model: VectorTransformer, seq_len: int) -> dict[str, pa.Schema]:
    """The Arrow schema of every family for ``model`` on sequences of ``seq_len`` positions."""
    cfg = model.cfg
    resid = _vector(cfg.d_model)
    return {
        "resid": pa.schema(
            _keys("layer", "sample", "position")
            + [pa.field(name, resid) for name in (*RESID_HOOKS, *EMBED_HOOKS)]
        ),
        "head_result": pa.schema(
            _keys("layer", "sample", "position", "head") + [pa.field("result", resid)]
        ),
        "pattern": pa.schema(
            _keys("layer", "sample", "position", "head") + [pa.field("pattern", _vector(seq_len))]
        ),
        "mlp_out": pa.schema(_keys("layer", "sample", "position") + [pa.field("mlp_out", resid)]),
        "ln_scale": pa.schema(
            _keys("sample", "position")
            + [pa.field(name, pa.float32()) for name in ln_columns(cfg.n_layers)]
        ),
        "outputs": pa.schema(
            _keys("sample", "position")
            + [pa.field(name, _vector(cfg.d_vocab)) for name in ("output", "target")]
        ),
    }


def model_signature(model: VectorTransformer) -> dict[str, list[float]]:
    """A fingerprint of the weights: per tensor, its norm and its projection on a fixed direction.

    Unlike a hash it survives float rounding (the same weights folded on another device match),
    and it still tells apart folded from unfolded weights, runs and checkpoints.
    """
    signature = {}
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().to("cpu", torch.float64).reshape(-1)
        generator = torch.Generator().manual_seed(0)
        direction = torch.randn(flat.numel(), generator=generator, dtype=torch.float64)
        projection = flat @ direction / math.sqrt(flat.numel())
        signature[name] = [flat.norm().item(), projection.item()]
    return signature


def same_model(a: dict[str, list[float]], b: dict[str, list[float]], rtol: float = 1e-5) -> bool:
    """Whether two :func:`model_signature` values agree to ``rtol`` of each tensor's norm."""
    return a.keys() == b.keys() and all(
        abs(x - y) <= rtol * a[name][0] + 1e-12
        for name in a
        for x, y in zip(a[name], b[name], strict=True)
    )


# --------------------------------------------------------------------------- writing


def write_activation_cache(
    model: VectorTransformer,
    inputs: Sequences,
    targets: Sequences,
    sample_ids: np.ndarray,
    out_dir: Path | str,
    metadata: dict[str, str],
    batch_size: int = 250,
) -> dict[str, Path]:
    """Run ``model`` over ``inputs``; write ``{family}.parquet`` for every family into ``out_dir``.

    ``inputs`` and ``targets`` are ``[N, L, d_vocab]``; ``sample_ids`` holds the ``N`` distinct
    integer ids of the sequences (rows are written in increasing id order). The model runs
    ``n_layers + 1`` times over the inputs (:func:`hooked_pass`): once per layer, capturing only
    that layer's hooks, then once for the LayerNorm scales and outputs. So memory holds one
    layer's activations at a time, and the files come out sorted by layer, in row groups of
    ``batch_size`` sequences (which change no number: :mod:`affine_icl.batches`).
    ``metadata`` (string keys and values) is stored in every file's schema metadata.
    Returns ``{family: path}``.
    """
    sample_ids = _check_inputs(model, inputs, targets, sample_ids, metadata)
    order = torch.from_numpy(np.argsort(sample_ids))
    inputs, targets, sample_ids = inputs[order], targets[order], sample_ids[order]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {family: out_dir / f"{family}.parquet" for family in FAMILIES}
    schemas = family_schemas(model, inputs.shape[1])
    common = {**metadata, MODEL_KEY: json.dumps(model_signature(model))}
    groups = [slice(start, start + batch_size) for start in range(0, len(inputs), batch_size)]
    ln_hooks = ln_columns(model.cfg.n_layers)
    with (
        ExitStack() as stack,
        tqdm(total=model.cfg.n_layers + 1, desc="caching activations (passes)") as progress,
    ):
        writers = {
            family: stack.enter_context(
                _writer(paths[family], schemas[family], {**common, FAMILY_KEY: family})
            )
            for family in FAMILIES
        }
        for layer in range(model.cfg.n_layers):
            _, acts = _numpy_pass(model, inputs, _layer_hooks(layer))
            progress.update()
            for rows in groups:
                cache = {name: act[rows] for name, act in acts.items()}
                tables = _layer_tables(cache, sample_ids[rows], layer, schemas)
                for family, table in tables.items():
                    _write(writers[family], table)
            acts = cache = None  # one layer's activations in memory at a time
        output, acts = _numpy_pass(model, inputs, list(ln_hooks.values()))
        progress.update()
        for rows in groups:
            ids = sample_ids[rows]
            cache = {name: act[rows] for name, act in acts.items()}
            _write(writers["ln_scale"], _ln_table(cache, ids, ln_hooks, schemas["ln_scale"]))
            outputs = _outputs_table(output[rows], _numpy(targets[rows]), ids, schemas["outputs"])
            _write(writers["outputs"], outputs)
    return paths


def _check_inputs(model, inputs, targets, sample_ids, metadata) -> np.ndarray:
    """Validate the arguments of :func:`write_activation_cache`; return ``sample_ids`` as int64."""
    if inputs.ndim != 3 or inputs.shape[-1] != model.cfg.d_vocab:
        raise ValueError(f"inputs must be [N, L, {model.cfg.d_vocab}], got {tuple(inputs.shape)}")
    if targets.shape != inputs.shape:
        raise ValueError(
            f"targets {tuple(targets.shape)} must have the shape of inputs {tuple(inputs.shape)}"
        )
    sample_ids = np.asarray(sample_ids)
    if not np.issubdtype(sample_ids.dtype, np.integer) or sample_ids.shape != (len(inputs),):
        raise ValueError(
            f"sample_ids must be {len(inputs)} integers, got {sample_ids.dtype} {sample_ids.shape}"
        )
    if len(np.unique(sample_ids)) != len(sample_ids):
        raise ValueError("sample_ids must be distinct")
    bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise TypeError(f"metadata keys and values must be strings, got {bad}")
    return sample_ids.astype(np.int64)


def _writer(path: Path, schema: pa.Schema, metadata: dict[str, str]) -> pq.ParquetWriter:
    """A zstd ParquetWriter: dictionary encoding and statistics on the integer keys only, and
    byte-stream-split encoding (compresses better) on the float columns."""
    keys = [f.name for f in schema if f.name in KEY_TYPES]
    floats = [
        f"{f.name}.list.element" if pa.types.is_fixed_size_list(f.type) else f.name
        for f in schema
        if f.name not in KEY_TYPES
    ]
    return pq.ParquetWriter(
        path,
        schema.with_metadata(metadata),
        compression="zstd",
        use_dictionary=keys,
        write_statistics=keys,
        use_byte_stream_split=floats,
        sorting_columns=[pq.SortingColumn(schema.get_field_index(key)) for key in keys],
    )


def _write(writer: pq.ParquetWriter, table: pa.Table) -> None:
    """Write ``table`` as exactly one row group."""
    writer.write_table(table, row_group_size=len(table))


@torch.no_grad()
def hooked_pass(
    model: VectorTransformer, inputs: Sequences, hooks: list[str]
) -> tuple[Float[Tensor, "batch pos d_vocab"], dict[str, Tensor]]:
    """``model``'s outputs over ``inputs`` ``[N, L, d_vocab]`` and the activations of the hook
    points named ``hooks`` over them (by name), float32 on the CPU, in the inputs' order.

    The batches run at once on the analyses' threads (:func:`~affine_icl.batches.map_batches`),
    so the bits are those of one call on one thread, whatever the threads or the batch size.
    The forward pass is the model's own; capturing more or fewer hooks changes no number."""
    captured: dict[int, dict[str, Tensor]] = {}  # by thread: batches run on several at once

    def keep(act: Tensor, hook) -> None:
        captured.setdefault(threading.get_ident(), {})[hook.name] = act.detach()

    def run(batch: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        output = model(batch)
        acts = captured.pop(threading.get_ident(), {})
        return _cpu(output), {name: _cpu(acts[name]) for name in hooks}

    with model.hooks(fwd_hooks=[(name, keep) for name in hooks]):
        outputs, acts = zip(*map_batches(run, inputs.to(model.device)), strict=True)
    return torch.cat(outputs), {name: torch.cat([a[name] for a in acts]) for name in hooks}


def _numpy_pass(model, inputs, hooks) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`hooked_pass` as numpy arrays."""
    output, acts = hooked_pass(model, inputs, hooks)
    return output.numpy(), {name: act.numpy() for name, act in acts.items()}


def _cpu(tensor: Tensor) -> Tensor:
    return tensor.detach().to("cpu", torch.float32)


def _numpy(tensor: Tensor) -> np.ndarray:
    return _cpu(tensor).numpy()


def _layer_hooks(layer: int) -> list[str]:
    templates = (*RESID_HOOKS.values(), RESULT_HOOK, PATTERN_HOOK, MLP_OUT_HOOK)
    hooks = [template.format(l=layer) for template in templates]
    return hooks + (list(EMBED_HOOKS.values()) if layer == 0 else [])


def _key_columns(
    ids: np.ndarray, seq_len: int, n_heads: int | None = None, layer: int | None = None
) -> dict[str, np.ndarray]:
    """Key columns for rows ordered by (sample, position[, head]), head varying fastest."""
    per_position = n_heads or 1
    columns = {
        "sample": np.repeat(ids, seq_len * per_position),
        "position": np.tile(np.repeat(np.arange(seq_len), per_position), len(ids)),
    }
    if n_heads:
        columns["head"] = np.tile(np.arange(n_heads), len(ids) * seq_len)
    if layer is not None:
        columns["layer"] = np.full(len(columns["sample"]), layer)
    return columns


def _vectors(array: np.ndarray, width: int) -> pa.FixedSizeListArray:
    """Rows of ``array`` (any shape whose last axis is ``width``) as a fixed-size float32 list."""
    flat = pa.array(np.ascontiguousarray(array, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _table(schema: pa.Schema, columns: dict) -> pa.Table:
    """A table with ``schema``'s columns in order; numpy keys are cast to the schema's types."""
    return pa.table(
        {
            f.name: pa.array(columns[f.name], f.type)
            if isinstance(columns[f.name], np.ndarray)
            else columns[f.name]
            for f in schema
        },
        schema=schema,
    )


def _layer_tables(cache: dict, ids: np.ndarray, layer: int, schemas: dict) -> dict[str, pa.Table]:
    """The rows of the four layer families for one batch of one layer."""
    result = cache[RESULT_HOOK.format(l=layer)]  # [b, L, H, d]
    _, seq_len, n_heads, d_model = result.shape
    pattern = cache[PATTERN_HOOK.format(l=layer)].transpose(0, 2, 1, 3)  # [b, Lq, H, Lk]
    per_position = _key_columns(ids, seq_len, layer=layer)
    per_head = _key_columns(ids, seq_len, n_heads, layer=layer)
    resid = {
        col: _vectors(cache[hook.format(l=layer)], d_model) for col, hook in RESID_HOOKS.items()
    }
    for col, hook in EMBED_HOOKS.items():
        resid[col] = (
            _vectors(cache[hook], d_model)
            if layer == 0
            else pa.nulls(len(per_position["sample"]), _vector(d_model))
        )
    return {
        "resid": _table(schemas["resid"], {**per_position, **resid}),
        "head_result": _table(
            schemas["head_result"], {**per_head, "result": _vectors(result, d_model)}
        ),
        "pattern": _table(schemas["pattern"], {**per_head, "pattern": _vectors(pattern, seq_len)}),
        "mlp_out": _table(
            schemas["mlp_out"],
            {**per_position, "mlp_out": _vectors(cache[MLP_OUT_HOOK.format(l=layer)], d_model)},
        ),
    }


def _ln_table(cache: dict, ids: np.ndarray, ln_hooks: dict[str, str], schema) -> pa.Table:
    """One batch of LayerNorm scales: one float32 column per LayerNorm (``ln_hooks``)."""
    seq_len = cache["ln_final.hook_scale"].shape[1]
    scales = {col: cache[hook].reshape(-1) for col, hook in ln_hooks.items()}
    return _table(schema, {**_key_columns(ids, seq_len), **scales})


def _outputs_table(output: np.ndarray, target: np.ndarray, ids: np.ndarray, schema) -> pa.Table:
    _, seq_len, d_vocab = output.shape
    return _table(
        schema,
        {
            **_key_columns(ids, seq_len),
            "output": _vectors(output, d_vocab),
            "target": _vectors(target, d_vocab),
        },
    )


# --------------------------------------------------------------------------- reading


def read_family(path: Path | str, columns: list[str] | None = None, filters=None) -> pa.Table:
    """Read one family file, only ``columns`` and only the rows that pass ``filters``.

    ``filters`` uses pyarrow's DNF form, e.g. ``[("layer", "=", 1), ("sample", "in", [3, 5])]``;
    row groups whose statistics exclude the filter (other layers) are skipped unread.
    """
    try:
        return pq.read_table(path, columns=columns, filters=filters)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable("activation file", path, exc) from exc


def read_metadata(path: Path | str) -> dict[str, str]:
    """The string metadata in a family file's schema: the caller's keys and ``activations.*``."""
    try:
        raw = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise unreadable("activation file", path, exc) from exc
    return {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW:")}


def load_activation_cache(
    cache_dir: Path | str,
    model: VectorTransformer,
    layers: list[int] | None = None,
    samples: list[int] | np.ndarray | None = None,
    families: tuple[str, ...] | list[str] | None = None,
) -> ActivationCache:
    """Rebuild a TransformerLens ``ActivationCache`` from the Parquet files in ``cache_dir``.

    Tensors (CPU, float32) have TransformerLens hook names and shapes with the batch first, in
    increasing sample id order: ``blocks.{l}.hook_resid_{pre,mid,post}``,
    ``blocks.{l}.hook_attn_out`` (head results + ``b_O``), ``blocks.{l}.hook_mlp_out``
    ``[N, L, d_model]``; ``blocks.{l}.attn.hook_result`` ``[N, L, n_heads, d_model]``;
    ``blocks.{l}.attn.hook_pattern`` ``[N, n_heads, L, L]``; ``blocks.{l}.ln{1,2}.hook_scale`` and
    ``ln_final.hook_scale`` ``[N, L, 1]``; and, when layer 0 is read, ``hook_embed`` and
    ``hook_pos_embed``.

    ``layers`` restricts the layers read (only their row groups are read); ``samples`` restricts
    the sequences to those ids (all must be in the cache; the result orders them by id, whatever
    the order given). ``model`` must be the model that wrote the cache, which is checked against
    the stored :func:`model_signature`: ``ActivationCache`` reads its weights, and its ``b_O``
    enters ``hook_attn_out``. ``families`` restricts the layer families read (of
    :data:`LAYER_FAMILIES`; the LayerNorm scales are always read), so that a Snakemake rule
    reads no file it does not declare as input.
    """
    cache_dir = Path(cache_dir)
    families = set(LAYER_FAMILIES if families is None else families) & set(LAYER_FAMILIES)
    _check_model(cache_dir, model)
    n_layers = model.cfg.n_layers
    layers = list(range(n_layers)) if layers is None else sorted({int(l) for l in layers})
    if any(not 0 <= l < n_layers for l in layers):
        raise ValueError(f"layers {layers} out of range for a model with {n_layers} layers")
    sample_filter = [] if samples is None else [("sample", "in", [int(s) for s in samples])]

    ln_hooks = ln_columns(n_layers)
    wanted = [col for l in layers for col in (f"ln1_l{l}", f"ln2_l{l}")] + ["ln_final"]
    table = read_family(
        cache_dir / "ln_scale.parquet", ["sample", "position", *wanted], sample_filter or None
    )
    grid = {"sample": _sample_ids(table, samples), "position": _positions(table)}
    scales = _dense(table, grid, wanted)
    cache = {ln_hooks[col]: _tensor(scales[col][..., None]) for col in wanted}
    for layer in layers:
        cache.update(_layer_cache(cache_dir, model, layer, grid, sample_filter, families))
    return ActivationCache(cache, model)


def activation_cache(model: VectorTransformer, inputs: Sequences) -> ActivationCache:
    """The activations :func:`load_activation_cache` would read back, computed in memory.

    Runs ``model`` over ``inputs`` ``[N, L, d_vocab]`` (in their order) once
    (:func:`hooked_pass`), keeping the hooks the Parquet cache stores, with ``hook_attn_out``
    rebuilt the same way (head results + ``b_O``), so an analysis gives the same numbers on
    either. For measurements that need no files, such as the claims at every weights snapshot
    (:mod:`affine_icl.over_training`).
    """
    hooks = [h for layer in range(model.cfg.n_layers) for h in _layer_hooks(layer)]
    hooks += list(ln_columns(model.cfg.n_layers).values())
    _, tensors = hooked_pass(model, inputs, hooks)
    for layer in range(model.cfg.n_layers):
        tensors[ATTN_OUT_HOOK.format(l=layer)] = _attn_out(
            model, layer, tensors[RESULT_HOOK.format(l=layer)]
        )
    return ActivationCache(tensors, model)


def _attn_out(model, layer: int, result: torch.Tensor) -> torch.Tensor:
    """``hook_attn_out`` rebuilt from the head results ``[..., n_heads, d_model]``: their sum
    plus the layer's ``b_O`` (the cache does not store it)."""
    b_O = model.blocks[layer].attn.b_O.detach().to("cpu", torch.float32)
    return result.sum(dim=-2) + b_O


def load_outputs(
    cache_dir: Path | str,
) -> tuple[np.ndarray, Sequences, Sequences]:
    """Sample ids ``[N]``, model outputs and targets ``[N, L, d_vocab]``, in increasing id order."""
    table = read_family(Path(cache_dir) / "outputs.parquet")
    ids = _sample_ids(table, None)
    values = _dense(table, {"sample": ids, "position": _positions(table)}, ["output", "target"])
    return ids, _tensor(values["output"]), _tensor(values["target"])


def _check_model(cache_dir: Path, model: VectorTransformer) -> None:
    stored = json.loads(read_metadata(cache_dir / "ln_scale.parquet")[MODEL_KEY])
    if not same_model(stored, model_signature(model)):
        raise ValueError(
            f"the activations in {cache_dir} were written by a different model; pass the model "
            "that wrote them (folded and unfolded weights differ)"
        )


def _sample_ids(table: pa.Table, samples) -> np.ndarray:
    """The sorted distinct sample ids of ``table``; every id in ``samples`` must be among them."""
    ids = np.unique(table.column("sample").to_numpy())
    if samples is not None:
        missing = sorted({int(s) for s in samples} - set(ids.tolist()))
        if missing:
            raise KeyError(f"samples not in the activation cache: {missing[:10]}")
    return ids


def _positions(table: pa.Table) -> np.ndarray:
    positions = np.unique(table.column("position").to_numpy())
    if not np.array_equal(positions, np.arange(len(positions))):
        raise ValueError(f"positions must be 0..L-1, got {positions.tolist()}")
    return positions


def _layer_cache(
    cache_dir: Path, model, layer: int, grid: dict, sample_filter, families: set[str]
) -> dict:
    """One layer's hooks from the requested ``families``: residual stream, head results with
    attn_out, patterns and mlp_out."""
    heads = {"head": np.arange(model.cfg.n_heads)}

    def read(family, columns, key_grid):
        filters = [("layer", "=", layer), *sample_filter]
        table = read_family(cache_dir / f"{family}.parquet", [*key_grid, *columns], filters)
        return _dense(table, key_grid, columns)

    cache = {}
    if "resid" in families:
        resid = read("resid", [*RESID_HOOKS, *(EMBED_HOOKS if layer == 0 else ())], grid)
        cache.update(
            {hook.format(l=layer): _tensor(resid[col]) for col, hook in RESID_HOOKS.items()}
        )
        if layer == 0:
            cache.update({hook: _tensor(resid[col]) for col, hook in EMBED_HOOKS.items()})
    if "head_result" in families:
        result = _tensor(read("head_result", ["result"], {**grid, **heads})["result"])
        cache[RESULT_HOOK.format(l=layer)] = result
        cache[ATTN_OUT_HOOK.format(l=layer)] = _attn_out(model, layer, result)
    if "pattern" in families:
        pattern = read("pattern", ["pattern"], {**grid, **heads})["pattern"]  # [N, Lq, H, Lk]
        cache[PATTERN_HOOK.format(l=layer)] = _tensor(pattern.transpose(0, 2, 1, 3))
    if "mlp_out" in families:
        cache[MLP_OUT_HOOK.format(l=layer)] = _tensor(read("mlp_out", ["mlp_out"], grid)["mlp_out"])
    return cache


def _dense(
    table: pa.Table, grid: dict[str, np.ndarray], columns: list[str]
) -> dict[str, np.ndarray]:
    """``columns`` of ``table`` as float32 arrays of shape ``[*grid sizes(, list size)]``.

    ``grid`` maps key columns, outermost first, to their sorted values; the rows must be exactly
    the grid's points (in any order), else the cache is incomplete or holds duplicates.
    """
    table = table.sort_by([(key, "ascending") for key in grid])
    shape = tuple(len(values) for values in grid.values())
    for key, points in zip(grid, np.meshgrid(*grid.values(), indexing="ij"), strict=True):
        if not np.array_equal(table.column(key).to_numpy(), points.reshape(-1)):
            raise ValueError(f"the rows do not hold every ({', '.join(grid)}) exactly once")
    out = {}
    for name in columns:
        column = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            values = column.flatten().to_numpy().reshape(*shape, column.type.list_size)
        else:
            values = column.to_numpy().reshape(shape)
        out[name] = values.astype(np.float32)  # a writable copy
    return out


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))
