"""Activation cache: Parquet round trip, schema, metadata and layer/column-projected reads."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_model import random_model
from transformer_lens import ActivationCache

from affine_icl.activations import (
    FAMILIES,
    activation_cache,
    load_activation_cache,
    load_outputs,
    read_family,
    read_metadata,
    write_activation_cache,
)
from affine_icl.config import ModelConfig
from affine_icl.model import fold_weights

N, L = 12, 5
BATCH = 5  # batches of 5, 5 and 2 sequences
META = {"config_hash": "abc123", "run": "seed0"}
CFG = ModelConfig(d_vocab=6, d_model=32, d_head=8, n_heads=4, d_mlp=64, n_layers=3, n_ctx=16)


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randn(N, L, CFG.d_vocab, generator=gen)
    targets = torch.randn(N, L, CFG.d_vocab, generator=gen)
    sample_ids = np.random.default_rng(2).permutation(np.arange(100, 100 + 3 * N, 3))
    return inputs, targets, sample_ids


@pytest.fixture(scope="module")
def model():
    return random_model(CFG)


@pytest.fixture(scope="module")
def written(tmp_path_factory, model, data):
    inputs, targets, sample_ids = data
    out_dir = tmp_path_factory.mktemp("activations")
    paths = write_activation_cache(model, inputs, targets, sample_ids, out_dir, META, BATCH)
    return out_dir, paths


def reference(model, inputs, sample_ids):
    """The live run_with_cache on the inputs sorted by sample id, as an ActivationCache."""
    order = np.argsort(sample_ids)
    with torch.no_grad():
        output, cache = model.run_with_cache(inputs[order])
    return output, cache, order


def assert_cache_matches(loaded: ActivationCache, ref: ActivationCache, layers, rows=slice(None)):
    expected = {"ln_final.hook_scale"}
    for l in layers:
        expected |= {
            f"blocks.{l}.hook_resid_pre",
            f"blocks.{l}.hook_resid_mid",
            f"blocks.{l}.hook_resid_post",
            f"blocks.{l}.hook_attn_out",
            f"blocks.{l}.hook_mlp_out",
            f"blocks.{l}.attn.hook_result",
            f"blocks.{l}.attn.hook_pattern",
            f"blocks.{l}.ln1.hook_scale",
            f"blocks.{l}.ln2.hook_scale",
        }
    if 0 in layers:
        expected |= {"hook_embed", "hook_pos_embed"}
    assert set(loaded.keys()) == expected
    for name in expected:
        assert loaded[name].shape == ref[name][rows].shape, name
        assert loaded[name].dtype == torch.float32
        torch.testing.assert_close(loaded[name], ref[name][rows], rtol=0, atol=1e-6, msg=name)


def test_round_trip_matches_run_with_cache(written, model, data):
    out_dir, paths = written
    inputs, targets, sample_ids = data
    assert paths == {f: out_dir / f"{f}.parquet" for f in FAMILIES}
    output, ref, order = reference(model, inputs, sample_ids)
    cache = load_activation_cache(out_dir, model)
    assert_cache_matches(cache, ref, layers=range(CFG.n_layers))

    final = cache["blocks.2.hook_resid_post"]
    torch.testing.assert_close(cache.decompose_resid().sum(0), final, rtol=0, atol=1e-5)
    heads, labels = cache.stack_head_results(apply_ln=True, return_labels=True)
    assert heads.shape == (CFG.n_layers * CFG.n_heads, N, L, CFG.d_model)
    assert labels[:2] == ["L0H0", "L0H1"]
    torch.testing.assert_close(heads, ref.stack_head_results(apply_ln=True), rtol=0, atol=1e-5)

    ids, outputs, loaded_targets = load_outputs(out_dir)
    np.testing.assert_array_equal(ids, np.sort(sample_ids))
    torch.testing.assert_close(outputs, output, rtol=0, atol=1e-6)
    torch.testing.assert_close(loaded_targets, targets[order], rtol=0, atol=0)


def test_in_memory_cache_is_the_parquet_cache(written, model, data):
    """activation_cache (no files, for the claims at every snapshot) holds exactly what the
    Parquet cache reads back, in the order of the inputs given."""
    out_dir, _ = written
    inputs, _, sample_ids = data
    order = np.argsort(sample_ids)
    loaded = load_activation_cache(out_dir, model)
    memory = activation_cache(model, inputs[order])
    assert set(memory.keys()) == set(loaded.keys())
    for name in loaded.keys():
        assert torch.equal(memory[name], loaded[name]), name  # bit for bit, BATCH row groups


def test_folded_model_round_trip_and_model_check(tmp_path, model, data):
    inputs, targets, sample_ids = data
    folded = fold_weights(model)
    write_activation_cache(folded, inputs, targets, sample_ids, tmp_path, META, BATCH)
    _, ref, _ = reference(folded, inputs, sample_ids)
    cache = load_activation_cache(tmp_path, folded)
    assert_cache_matches(cache, ref, layers=range(CFG.n_layers))
    torch.testing.assert_close(
        cache.decompose_resid().sum(0), cache["blocks.2.hook_resid_post"], rtol=0, atol=1e-5
    )
    with pytest.raises(ValueError, match="written by a different model"):
        load_activation_cache(tmp_path, model)  # unfolded: other weights, other b_O
    with pytest.raises(ValueError, match="written by a different model"):
        load_activation_cache(tmp_path, fold_weights(random_model(CFG, seed=1)))

    # Float rounding (e.g. the same weights folded on another device) still matches.
    rounded = fold_weights(model)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in rounded.parameters():
            param.mul_(1 + 1e-7 * torch.randn(param.shape, generator=gen))
    assert "hook_embed" in load_activation_cache(tmp_path, rounded, layers=[0]).keys()


def test_metadata_in_every_file(written, model):
    _, paths = written
    for family, path in paths.items():
        meta = read_metadata(path)
        assert meta["config_hash"] == "abc123" and meta["run"] == "seed0"
        assert meta["activations.family"] == family
        signature = json.loads(meta["activations.model_signature"])
        assert set(signature) == set(model.state_dict())
        assert pq.ParquetFile(path).schema_arrow.metadata[b"config_hash"] == b"abc123"


def test_schema_types_and_zstd(written):
    _, paths = written
    vec = lambda width: pa.list_(pa.float32(), width)  # noqa: E731
    keys = {"layer": pa.int8(), "sample": pa.int64(), "position": pa.int16(), "head": pa.int8()}
    expected = {
        "resid": [
            "layer",
            "sample",
            "position",
            ("pre", vec(32)),
            ("mid", vec(32)),
            ("post", vec(32)),
            ("embed", vec(32)),
            ("pos_embed", vec(32)),
        ],
        "head_result": ["layer", "sample", "position", "head", ("result", vec(32))],
        "pattern": ["layer", "sample", "position", "head", ("pattern", vec(L))],
        "mlp_out": ["layer", "sample", "position", ("mlp_out", vec(32))],
        "ln_scale": ["sample", "position"]
        + [(f"ln{i}_l{l}", pa.float32()) for l in range(3) for i in (1, 2)]
        + [("ln_final", pa.float32())],
        "outputs": ["sample", "position", ("output", vec(6)), ("target", vec(6))],
    }
    for family, path in paths.items():
        schema = pq.read_schema(path)
        fields = [(c, keys[c]) if isinstance(c, str) else c for c in expected[family]]
        assert [(f.name, f.type) for f in schema] == fields, family
        metadata = pq.ParquetFile(path).metadata
        for g in range(metadata.num_row_groups):
            for c in range(metadata.num_columns):
                assert metadata.row_group(g).column(c).compression == "ZSTD"


def test_rows_sorted_by_layer_sample_position_head(written):
    _, paths = written
    table = read_family(paths["head_result"], columns=["layer", "sample", "position", "head"])
    keys = np.stack([table.column(k).to_numpy().astype(np.int64) for k in table.column_names])
    assert np.all(np.diff(np.lexsort(keys[::-1])) == 1)  # already in lexicographic order
    resid = read_family(paths["resid"], columns=["layer", "embed"]).to_pydict()
    assert all((e is None) == (l != 0) for l, e in zip(resid["layer"], resid["embed"], strict=True))


class RangeRecorder:
    """A read-only file object that records the byte ranges read through it."""

    def __init__(self, file):
        self.file = file
        self.ranges: list[tuple[int, int]] = []

    def read(self, size=-1):
        start = self.file.tell()
        data = self.file.read(size)
        self.ranges.append((start, start + len(data)))
        return data

    def __getattr__(self, name):
        return getattr(self.file, name)


def chunks_read(path, read) -> tuple[set[tuple[int, str]], int]:
    """Run ``read(file object)``; return the (row group, column) chunks it fetched and the bytes.

    The footer read is left out: to parse the metadata the reader fetches the file's tail (up to
    64 KiB, so all of these small test files), which is the read that ends at the end of the file.
    """
    size = path.stat().st_size
    with open(path, "rb") as raw:
        recorder = RangeRecorder(raw)
        read(pa.PythonFile(recorder, mode="r"))
    ranges = [(a, b) for a, b in recorder.ranges if b != size]
    metadata = pq.ParquetFile(path).metadata
    touched = set()
    for g in range(metadata.num_row_groups):
        for c in range(metadata.num_columns):
            chunk = metadata.row_group(g).column(c)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            stop = start + chunk.total_compressed_size
            if any(a < stop and start < b for a, b in ranges):
                touched.add((g, chunk.path_in_schema))
    return touched, sum(b - a for a, b in ranges)


def test_one_layer_projected_read_reads_only_its_row_groups(written):
    _, paths = written
    path = paths["pattern"]
    metadata = pq.ParquetFile(path).metadata
    layer_of = []
    for g in range(metadata.num_row_groups):
        stats = metadata.row_group(g).column(0).statistics  # column 0 is layer
        assert stats.min == stats.max  # no row group spans two layers
        layer_of.append(stats.min)
    assert layer_of == sorted(layer_of) and set(layer_of) == {0, 1, 2}
    needed = [g for g, layer in enumerate(layer_of) if layer == 1]
    assert len(needed) == 3  # one per batch of sequences: 5 + 5 + 2

    columns, filters = ["sample", "position", "head", "pattern"], [("layer", "=", 1)]
    table = read_family(path, columns=columns, filters=filters)
    assert table.equals(pq.ParquetFile(path).read_row_groups(needed, columns=columns))
    assert table.num_rows == N * L * CFG.n_heads

    # read_family fetches layer 1's row groups only (pyarrow coalesces neighbouring chunks of
    # those row groups into one request, so their other columns may come along) ...
    touched, _ = chunks_read(path, lambda f: read_family(f, columns=["pattern"], filters=filters))
    assert {g for g, _ in touched} == set(needed)
    # ... and without coalescing, only the projected columns plus the filter column.
    touched, n_bytes = chunks_read(
        path, lambda f: pq.read_table(f, columns=["pattern"], filters=filters, pre_buffer=False)
    )
    assert touched == {(g, c) for g in needed for c in ("layer", "pattern.list.element")}
    data_bytes = sum(
        metadata.row_group(g).column(c).total_compressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )
    assert n_bytes < data_bytes / 3


def test_layer_and_sample_subsets(written, model, data):
    out_dir, _ = written
    inputs, _, sample_ids = data
    _, ref, order = reference(model, inputs, sample_ids)
    sorted_ids = sample_ids[order]
    chosen = [int(sorted_ids[7]), int(sorted_ids[2]), int(sorted_ids[10])]
    rows = [2, 7, 10]  # positions of the chosen ids in the id-sorted reference

    cache = load_activation_cache(out_dir, model, layers=[1], samples=chosen)
    assert_cache_matches(cache, ref, layers=[1], rows=rows)
    assert cache["blocks.1.attn.hook_pattern"].shape == (3, CFG.n_heads, L, L)

    cache = load_activation_cache(out_dir, model, layers=[0, 2], samples=np.array(chosen))
    assert_cache_matches(cache, ref, layers=[0, 2], rows=rows)

    with pytest.raises(KeyError, match="not in the activation cache"):
        load_activation_cache(out_dir, model, samples=[int(sorted_ids[0]), 99999])
    with pytest.raises(ValueError, match="out of range"):
        load_activation_cache(out_dir, model, layers=[3])


def test_family_subset_reads_only_those_families(written, model):
    out_dir, _ = written
    cache = load_activation_cache(out_dir, model, layers=[1], families=["pattern"])
    assert set(cache.keys()) == {
        "blocks.1.attn.hook_pattern",
        "blocks.1.ln1.hook_scale",
        "blocks.1.ln2.hook_scale",
        "ln_final.hook_scale",
    }
    cache = load_activation_cache(out_dir, model, layers=[0], families=["resid", "head_result"])
    assert "hook_embed" in cache.keys() and "blocks.0.hook_attn_out" in cache.keys()
    assert "blocks.0.hook_mlp_out" not in cache.keys()


def test_bad_arguments_are_named(tmp_path, model, data):
    inputs, targets, sample_ids = data
    with pytest.raises(ValueError, match="distinct"):
        write_activation_cache(model, inputs, targets, np.zeros(N, int), tmp_path, META)
    with pytest.raises(ValueError, match="shape of inputs"):
        write_activation_cache(model, inputs, targets[:, :3], sample_ids, tmp_path, META)
    with pytest.raises(TypeError, match="strings"):
        write_activation_cache(model, inputs, targets, sample_ids, tmp_path, {"seed": 0})
