"""The README's generated parts: the Results section from the aggregated claims table, the table
of figures from the figure registry."""

from pathlib import Path

import pandas as pd
import pytest

from affine_icl.readme import END, START, replace_block, results_block


def test_replace_block_touches_only_the_marked_section():
    text = f"intro\n{START}\nold\n{END}\noutro\n"
    assert replace_block(text, "new") == f"intro\n{START}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="exactly once"):
        replace_block("no markers", "new")


def test_results_block_lists_runs_and_claims():
    claims = pd.DataFrame(
        {
            "claim_id": ["final_mse"],
            "section": ["4.1"],
            "paper": ["1e-4"],
            "mean": [2e-4],
            "min": [2e-4],
            "max": [2e-4],
            "summary": ["holds in 0 of 1 runs"],
            "margin": ["not reproduced in 1: fails until x0.4 looser"],
            "chance_note": [float("nan")],  # empty, read back from a CSV
            "other_reading": [float("nan")],
            "measured_as": [float("nan")],
        }
    )
    runs = pd.DataFrame(
        {
            "run": ["seed0"],
            "steps": [100000],
            "final held-out MSE": [2e-4],
            "training time (min)": [55.0],
        }
    )
    block = results_block(claims, runs, "2-core CPU", note="full protocol")
    assert "machine: 2-core CPU" in block and "| seed0 | 100000 |" in block
    assert "1 claim(s) holds in 0 of 1 runs" in block and "full protocol" in block
    assert "| holds in 0 of 1 runs | not reproduced in 1: fails until x0.4 looser |  |  |" in block
    assert "nan" not in block and "'Margin': over which strictness factors" in block
    settled = pd.DataFrame(
        {"claim_id": ["final_mse"], "settled_since": [100000], "last_step": [100000], "runs": [1]}
    )
    block = results_block(claims, runs, "2-core CPU", settled=settled)
    assert "verdict settled since step |" in block and "| 100000 |" in block.split("final_mse")[1]
    assert "1 verdict(s) changed at the last step measured" in block


def test_provenance_reads_the_training_time_from_each_log(tmp_path):
    """The log's elapsed_s survives a resumption; a resumed job's benchmark (seconds) does not."""
    from affine_icl.readme import provenance

    for run, seconds in (("a", 60.0), ("b", 180.0)):
        (tmp_path / "runs" / run).mkdir(parents=True)
        log = {"step": [10, 20], "heldout_mse": [0.5, 0.25], "elapsed_s": [seconds / 2, seconds]}
        pd.DataFrame(log).to_parquet(tmp_path / "runs" / run / "train_log.parquet")
    bench = tmp_path / "benchmarks" / "train"
    bench.mkdir(parents=True)
    (bench / "a.tsv").write_text("s\th:m:s\n9\t0:00:09\n")  # a rerun that resumed at the end
    table = provenance(tmp_path, ["a", "b"]).set_index("run")
    assert list(table["training time (min)"]) == [1.0, 3.0]
    assert list(table["final held-out MSE"]) == [0.25] * 2 and list(table["steps"]) == [20] * 2


def test_provenance_names_each_runs_initialisation_from_its_log(tmp_path):
    import json

    import pyarrow as pa

    from affine_icl.data import write_parquet
    from affine_icl.readme import provenance

    log = pa.table({"step": [10], "heldout_mse": [0.5], "elapsed_s": [6.0]})
    for run, model in (("old", {}), ("pt", {"init": "torch"})):
        path = tmp_path / "runs" / run / "train_log.parquet"
        write_parquet(log, path, {"run_config": json.dumps({"model": model})})
    table = provenance(tmp_path, ["old", "pt"]).set_index("run")
    assert list(table["init"]) == ["transformer_lens", "torch"]  # absent: the default


def test_runs_aggregates_the_named_runs_of_a_sweep_only(tmp_path):
    """--runs: one setting of a sweep (five seeds of one init), aggregated from the runs' own
    claims, as the aggregate_claims rule would; the other runs stay out."""
    from affine_icl.readme import END, START, main

    claim = {
        "claim_id": "final_mse",
        "section": "4.1",
        "claim": "MSE",
        "paper": "1e-4",
        "measured_as": "",
        "criterion": "",
    }
    verdicts = {"a": "reproduced", "b": "not reproduced", "other": "reproduced"}
    for run, verdict in verdicts.items():
        d = tmp_path / "runs" / run
        d.mkdir(parents=True)
        pd.DataFrame([{**claim, "measured": 1e-4, "verdict": verdict}]).to_csv(
            d / "claims.csv", index=False
        )
        log = {"step": [100], "heldout_mse": [1e-4], "elapsed_s": [60.0]}
        pd.DataFrame(log).to_parquet(d / "train_log.parquet")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\n")
    main(
        ["--results", str(tmp_path), "--readme", str(readme), "--machine", "m", "--runs", "a", "b"]
    )
    text = readme.read_text()
    assert "the claims of `a`, `b` in" in text and "(2 run(s), machine: m)" in text
    assert "holds in 1 of 2 runs" in text and "other" not in text and "\nold\n" not in text


def test_the_readmes_table_of_figures_is_the_registrys():
    """README.md's figure table is generated: `python -m affine_icl.readme --figures`."""
    from affine_icl.readme import FIGURES_END, FIGURES_START, figures_block

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split(FIGURES_START)[1].split(FIGURES_END)[0]
    assert block.strip() == figures_block(), "run python -m affine_icl.readme --figures"
