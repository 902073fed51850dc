"""Measured rule costs against config resources (affine_icl.costs), on benchmark files whose
numbers are known."""

import copy

import pytest
import yaml
from conftest import REPO

from affine_icl.costs import read_benchmarks, rule_costs
from affine_icl.validation import validate_config

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path, *rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        HEADER + "".join(f"{s}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t0\n" for s, rss in rows)
    )


@pytest.fixture
def config():
    config = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
    config["resources"]["fig07_head_attribution"] = {"mem_mb": 500, "runtime": 1}
    validate_config(config)
    return config


def test_each_rule_is_measured_against_what_it_asks_for(tmp_path, config):
    bench(tmp_path / "cache_activations" / "a.tsv", (10.0, 800.0))
    bench(tmp_path / "cache_activations" / "b.tsv", (30.0, 900.0))
    bench(tmp_path / "fig07_head_attribution" / "a.tsv", (5.0, 600.0))  # over its 500 MB
    bench(tmp_path / "fig07_head_attribution" / "b.tsv", (70.0, "NA"))  # over its minute
    bench(tmp_path / "train" / "a+b.tsv", (100.0, 550.0))  # a batched training job
    bench(tmp_path / "aggregate_claims.tsv", (2.0, "NA"))  # too short to sample memory
    measured = read_benchmarks(tmp_path)
    assert len(measured) == 6
    costs = rule_costs(measured, config).set_index("rule")
    assert list(costs.index) == [
        "aggregate_claims",
        "cache_activations",
        "fig07_head_attribution",
        "train",
    ]
    cache = costs.loc["cache_activations"]
    assert (cache.jobs, cache.median_s, cache.max_s, cache.max_rss_mb) == (2, 20.0, 30.0, 900.0)
    assert (cache.threads, cache.mem_mb, cache.runtime_min) == (1, 3000, 10)  # config.yaml
    assert bool(cache.fits)
    assert not costs.loc["fig07_head_attribution", "fits"]
    assert costs.loc["train", "mem_mb"] == config["resources"]["train"]["mem_mb"]
    agg = costs.loc["aggregate_claims"]
    assert agg.max_rss_mb != agg.max_rss_mb and bool(agg.fits)  # NaN: no sample, not a failure
    # within its runtime but over its memory, and the other way round
    config["resources"]["fig07_head_attribution"] = {"mem_mb": 700, "runtime": 1}
    assert not rule_costs(measured, config).set_index("rule").loc["fig07_head_attribution", "fits"]
    config["resources"]["fig07_head_attribution"] = {"mem_mb": 700, "runtime": 2}
    assert rule_costs(measured, config).set_index("rule").loc["fig07_head_attribution", "fits"]


def test_no_benchmarks_yet_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run the workflow first"):
        read_benchmarks(tmp_path / "benchmarks")
