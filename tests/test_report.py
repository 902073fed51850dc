"""The report's pieces without a build: the claims tables as coloured HTML, and the report's
introduction (workflow/report/workflow.rst) saying what was run against the paper's protocol."""

import copy
import re
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from conftest import REPO
from docutils.core import publish_parts
from jinja2 import Environment
from snakemake.utils import update_config

from affine_icl.aggregate import aggregate_claims, aggregate_html, held_class
from affine_icl.claims.verdicts import (
    DIFFERS,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
)
from affine_icl.config import NOT_IN_WEIGHTS, RunConfig, TrainConfig, run_config
from affine_icl.protocol import protocol_differences, protocol_note
from affine_icl.render import to_html

DEFAULTS = yaml.safe_load((REPO / "config.yaml").read_text())


def claims(verdicts, measured=None, claim="a claim"):
    """A claims table (the columns of ``claims_table``) with the given verdicts."""
    n = len(verdicts)
    return pd.DataFrame(
        {
            "claim_id": [f"c{i}" for i in range(n)],
            "section": ["4.1"] * n,
            "claim": [claim] * n,
            "paper": ["1e-4"] * n,
            "measured": measured if measured is not None else [0.5] * n,
            "measured_as": [""] * n,
            "chance": [0.2] * n,
            "chance_as": ["uniform share"] * n,
            "effect": [3.0] * n,
            "effect_as": ["ratio to chance"] * n,
            "criterion": ["<= 0.0002"] * n,
            "verdict": verdicts,
            "margin": ["holds up to x1.4 stricter", "differs from x0.5 to x2"] + ["-"] * (n - 2),
            "chance_passes": [False, True] + [False] * (n - 2),
            "chance_note": ["", "chance passes this criterion: the verdict cannot tell"]
            + [""] * (n - 2),
        }
    )


def cell_classes(page: str) -> list[str]:
    return re.findall(r'<td class="([^"]*)"', page)


def test_claims_html_colours_each_verdict_and_escapes_text():
    verdicts = [REPRODUCED, DIFFERS, NOT_REPRODUCED, NOT_MEASURABLE]
    page = to_html(
        claims(verdicts, measured=[1e-4, 2.0, 3.0, float("nan")], claim="x < y & <b>"),
        "Claims on run <r>",
        intro=["Run r: seed 1."],
        notes=["Warning: the loss collapsed."],
    )
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr>") == 1 + len(verdicts)
    assert "x &lt; y &amp; &lt;b&gt;" in page and "<b>" not in page
    assert "<h1>Claims on run &lt;r&gt;</h1>" in page
    assert '<p class="note">Warning: the loss collapsed.</p>' in page
    coloured = [c for c in cell_classes(page) if c in {"holds", "partial", "fails", "unknown"}]
    assert coloured == ["holds", "partial", "fails", "unknown"]  # one per row, in row order
    for name in ("holds", "partial", "fails", "unknown"):
        assert re.search(rf"\.{name} {{ background: #[0-9a-f]{{6}}; }}", page), name
    assert "n/a" in page  # a NaN measurement
    assert "reproduced: 1, differs in degree: 1, not reproduced: 1, not measurable: 1" in page
    # chance and effect beside the measurement, what they are; the margin and any chance
    # note beneath the verdict
    assert "<small>uniform share</small>" in page and "<small>ratio to chance</small>" in page
    assert "<small>holds up to x1.4 stricter</small>" in page
    assert (
        "<small>differs from x0.5 to x2; chance passes this criterion: the verdict cannot "
        "tell</small>"
    ) in page
    assert "Claims whose criterion a measurement at chance would pass too: 1" in page


@pytest.mark.parametrize(
    "verdicts,expected",
    [
        ([REPRODUCED, REPRODUCED], "holds"),
        ([REPRODUCED, NOT_REPRODUCED], "partial"),
        ([DIFFERS, NOT_REPRODUCED], "fails"),
        ([NOT_MEASURABLE, NOT_MEASURABLE], "unknown"),
    ],
)
def test_held_in_k_of_n_runs_colour(verdicts, expected):
    assert held_class(verdicts) == expected


def test_across_runs_html_colours_each_runs_value_by_its_verdict():
    per_run = {
        "a": claims([REPRODUCED, NOT_REPRODUCED], measured=[1.0, 2.0]),
        "b": claims([REPRODUCED, DIFFERS], measured=[3.0, 4.0]),
    }
    page = aggregate_html(aggregate_claims(per_run), per_run, "Across runs")
    rows = page.split("<tr>")[2:]
    assert len(rows) == 2
    coloured = [[c for c in cell_classes(row) if c != "num"] for row in rows]
    assert coloured == [["holds num", "holds num", "holds"], ["fails num", "partial num", "fails"]]
    assert "<small>differs in degree</small>" in rows[1]
    assert "holds in 2 of 2 runs" in rows[0] and "holds in 0 of 2 runs" in rows[1]
    assert "Claims that hold in every run: 1; in some runs: 0; in no run: 1 (of 2)." in page


def test_protocol_differences_name_every_changed_weight_setting():
    assert protocol_differences(RunConfig()) == []
    assert protocol_differences(RunConfig(train=TrainConfig(steps=200, seed=3, log_every=7))) == [
        "train.steps = 200 (paper: 100000)"
    ]
    note = protocol_note("tiny", RunConfig(train=TrainConfig(steps=2000, seed=3)))
    assert note == (
        "Run tiny: seed 3, 2,000 training steps; not the paper's protocol: "
        "train.steps = 2000 (paper: 100000)."
    )
    assert protocol_note("seed0", run_config(DEFAULTS, "seed0")).endswith("the paper's protocol.")


def render_introduction(config) -> str:
    """workflow/report/workflow.rst as Snakemake renders it (Jinja, then docutils), as text,
    with what workflow/rules/common.smk adds to the config for it (no run trained, unless the
    test says what was)."""
    from affine_icl.rules import protocol_summary, report_runs

    config = {
        "report_runs": report_runs(config, "/nonexistent/results"),
        **config,
        "protocol": protocol_summary(),
    }
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string((REPO / "workflow" / "report" / "workflow.rst").read_text())
    rst = template.render(snakemake=SimpleNamespace(config=config), categories={}, files=[])
    body = publish_parts(rst, writer="html", settings_overrides={"halt_level": 2})
    return re.sub(r"<[^>]+>", "", body["html_body"]).replace("&quot;", '"').replace("\n", " ")


def test_introduction_says_the_default_config_is_the_papers_protocol():
    text = render_introduction(DEFAULTS)
    assert "seed0: seed 0, 100,000 steps configured, not trained yet; the paper's protocol." in text
    assert "not the paper's protocol" not in text and "Every run of this report follows it" in text


def test_introduction_says_what_a_tiny_run_trained():
    config = copy.deepcopy(DEFAULTS)
    update_config(config, yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text()))
    config["runs"].append({"name": "long", "seed": 9, "train": {"steps": 100_000, "lr": 1e-4}})
    text = render_introduction(config)
    assert "tiny: seed 7, 200 steps configured, not trained yet; not the paper's protocol:" in text
    assert "train.steps = 200 (paper: 100000)" in text
    assert (
        "long: seed 9, 100,000 steps configured, not trained yet; not the paper's protocol: "
        in text
    )
    assert "3 of 3 run(s) depart from it" in text


def _changed(value):
    if isinstance(value, bool | str):
        return "gelu" if isinstance(value, str) else not value
    if isinstance(value, list):
        return [_changed(v) for v in value]
    return value * 2 if isinstance(value, float) else value + 1


WEIGHT_KEYS = [
    (section, key)
    for section in ("data", "model", "train")
    for key in DEFAULTS[section]
    if key not in NOT_IN_WEIGHTS.get(section, ())
]


@pytest.mark.parametrize("section,key", WEIGHT_KEYS, ids=[".".join(k) for k in WEIGHT_KEYS])
def test_introduction_and_claims_page_agree_on_every_weight_setting(section, key):
    """The introduction and the claims page name a changed weight setting alike (both from
    protocol_differences; the page keeps no copy of the protocol), an unchanged one neither."""
    config = copy.deepcopy(DEFAULTS)
    config[section][key] = _changed(config[section][key])
    named = f"{section}.{key} = "
    assert named in render_introduction(config)
    assert any(d.startswith(named) for d in protocol_differences(run_config(config, "seed0")))


def test_introduction_names_the_code_that_ran():
    from affine_icl.provenance import code_version

    config = {**copy.deepcopy(DEFAULTS), "code_version": code_version()}
    text = render_introduction(config)
    assert f"commit {code_version()['code_commit']}" in text
    assert f"hash {code_version()['code_hash']}" in text


def test_a_non_default_init_is_named_as_a_departure_from_the_default():
    config = copy.deepcopy(DEFAULTS)
    config["runs"] = [{"name": "tl", "seed": 0, "model": {"init": "transformer_lens"}}]
    named = "model.init = transformer_lens (default: torch; the paper does not say)"
    assert named in render_introduction(config)
    assert protocol_differences(run_config(config, "tl")) == [named]
    config["runs"] = [{"name": "pt", "seed": 0, "model": {"init": "torch"}}]
    assert protocol_differences(run_config(config, "pt")) == []


def test_the_front_page_describes_what_was_trained_not_the_config_at_report_time():
    """A 2,000-step quick run reported under the default (100,000-step) config said "100,000
    steps; the paper's protocol" above a claims table of 2,000 steps."""
    config = copy.deepcopy(DEFAULTS)
    config["report_runs"] = {
        "seed0": {
            "steps": 2000,
            "differences": ["train.steps = 2000 (paper: 100000)"],
            "trained": True,
        }
    }
    text = render_introduction(config)
    assert (
        "seed0: seed 0, 2,000 steps trained; not the paper's protocol: train.steps = 2000" in text
    )
    assert "1 of 1 run(s) depart from it" in text
    assert "Every run of this report follows it" not in text


def test_claims_html_keeps_claim_and_verdict_in_view():
    """The per-run table was 2,469 px wide in a 1,425 px frame: how a claim is measured and
    its criterion now sit under the claim, not in two more columns after the verdict."""
    table = claims([REPRODUCED, NOT_REPRODUCED])
    page = to_html(table, "Claims")
    head = re.findall(r"<th>([^<]+)</th>", page)
    # only the other reading of the paper's words follows the verdict, and it wraps (long)
    assert head[-2:] == ["verdict", "another reading"]
    assert "measured as" not in head and "criterion" not in head
    assert page.count("<small>criterion: &lt;= 0.0002</small>") == len(table)
    assert "td.long { min-width: 16em; max-width: 32em; }" in page
