"""Figure tables: the numbers plotted are the numbers computed."""

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from affine_icl.analysis.selection import heads_above_or_top
from affine_icl.config import DataConfig
from affine_icl.data import SEQUENCE_TYPES, example_sequences
from affine_icl.figures.attention import plot_attention_patterns
from affine_icl.figures.data import (
    loss_curve_table,
    plot_loss_curve,
    plot_sequence_types,
    sequence_types_table,
)
from affine_icl.figures.layer2 import fallback_pick, plot_before_after
from affine_icl.figures.ov import (
    plot_matrices,
    plot_mean_ablation,
    plot_ov_regression,
    plot_share_outside,
)
from affine_icl.figures.residual import plot_sequence_series


def test_sequence_types_table_keeps_paper_order_and_dims():
    table = sequence_types_table(example_sequences(DataConfig()).to_pandas(), dims_shown=5)
    assert list(dict.fromkeys(table["sequence_type"])) == [name for name, _ in SEQUENCE_TYPES]
    assert sorted(table["dim"].unique()) == [0, 1, 2, 3, 4]
    fig = plot_sequence_types(table)
    assert [ax.get_title().split(",")[0] for ax in fig.axes] == [n for n, _ in SEQUENCE_TYPES]


def test_loss_curve_table_has_both_series_without_gaps():
    log = pd.DataFrame(
        {
            "step": [10, 20, 30],
            "train_loss": [1.0, 0.5, 0.25],
            "heldout_mse": [np.nan, 0.6, np.nan],
            "elapsed_s": [1, 2, 3],
        }
    )
    table = loss_curve_table(log)
    train = table[table["series"].str.startswith("training")]
    held = table[table["series"].str.startswith("held-out")]
    assert train["mse"].tolist() == [1.0, 0.5, 0.25]
    assert held[["step", "mse"]].values.tolist() == [[20, 0.6]]
    ax = plot_loss_curve(table, paper_mse=1e-4).axes[0]
    assert ax.get_yscale() == "log"
    assert any(list(line.get_ydata()) == [1e-4, 1e-4] for line in ax.get_lines())


# --------------------------------------------------------------------------- layout checks


def _overlaps(a, b) -> bool:
    """Whether two display-space bounding boxes overlap."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _pattern_table(heads: int, positions: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    h, q, k = np.meshgrid(*(np.arange(n) for n in (heads, positions, positions)), indexing="ij")
    return pd.DataFrame(
        {
            "layer": 0,
            "head": h.ravel(),
            "query": q.ravel(),
            "key": k.ravel(),
            "weight": rng.uniform(size=h.size),
        }
    )


def test_attention_patterns_have_one_shared_colourbar():
    for heads, grid in ((6, 8), (1, 1)):  # a 2 x 4 grid with two spare axes; Figure 18's single
        fig = plot_attention_patterns(_pattern_table(heads), "title")
        assert len(fig.axes) == grid + 1  # the panels and one colourbar
        bars = [ax for ax in fig.axes if ax.get_ylabel() == "attention weight"]
        assert len(bars) == 1
        meshes = [ax.collections[0] for ax in fig.axes[:heads]]
        assert meshes[0].colorbar is not None and meshes[0].colorbar.ax is bars[0]
        assert all(m.get_clim() == (0, 1) for m in meshes)  # so one colourbar fits every panel


def _regressions() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    regressions = pd.DataFrame(
        {
            "source": ["residual"] * 20 + ["random"] * 20,
            "vector": list(range(20)) * 2,
            "slope": rng.normal(2.3, 0.1, 40),
            "intercept": rng.normal(0, 0.01, 40),
            "r2": rng.uniform(0.5, 0.9, 40),
        }
    )
    x = rng.normal(size=16)
    points = pd.DataFrame({"source": "residual", "vector": 0, "x": x, "ov_x": 2.3 * x})
    return points, regressions


def test_ov_regression_legend_names_both_dashed_lines():
    points, regressions = _regressions()
    fig = plot_ov_regression(points, regressions, "Figure 8")
    ax = fig.axes[1]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"residual", "random"} <= set(legend)  # seaborn's hue entries are kept
    for line in dashed:
        assert line.get_label() in legend
    assert any("residual" in line.get_label() for line in dashed)
    assert any("random" in line.get_label() for line in dashed)
    # the slope panel keeps both its hue entries and the paper's range
    slope_legend = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert {"residual", "random"} <= set(slope_legend)
    assert any("paper's slope range" in t for t in slope_legend)


def _assert_legend_off_points(fig) -> None:
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert not _overlaps(legend, ax.get_window_extent())  # outside the data area altogether
    points = ax.collections[0]
    for x, y in ax.transData.transform(points.get_offsets()):
        assert not (legend.x0 <= x <= legend.x1 and legend.y0 <= y <= legend.y1)


def test_mean_ablation_draws_labelled_points_and_reference_lines():
    table = pd.DataFrame(
        {
            "layer": 1,
            "ablated": ["L1H0", "L1H1", "all layer-1 heads"],
            "mse_before": 0.01,
            "mse_after": [0.0101, 0.02, 0.5],
            "ratio": [1.01, 2.0, 50.0],
            "n_sequences": 32,
        }
    )
    fig = plot_mean_ablation(table, paper_mse=2e-4)
    ax = fig.axes[0]
    assert not ax.patches  # points, no bars from an arbitrary baseline
    texts = [t.get_text() for t in ax.texts]
    for value in table["mse_after"]:
        assert any(t.startswith(f"{value:.4g}") for t in texts)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("no ablation") for t in legend)
    assert any(t.startswith("paper") for t in legend)
    _assert_legend_off_points(fig)


def test_before_after_title_says_when_heads_were_a_fallback_pick():
    scores = pd.DataFrame({"layer": 2, "head": [0, 1, 2], "qk_identity_d_model": [0.1, 0.05, -0.2]})
    table = pd.DataFrame(
        {
            "heads": ["L2H0 L2H1"],
            "n_heads": [2],
            "mse_before": [0.01],
            "mse_after": [0.03],
            "ratio": [3.0],
        }
    )
    _, fallback = heads_above_or_top(scores, 2, "qk_identity_d_model", 0.3, k=2)
    _, regular = heads_above_or_top(scores, 2, "qk_identity_d_model", 0.01, k=2)
    assert fallback_pick(fallback) and fallback_pick(regular) is None
    fig = plot_before_after(table.assign(picked_by=fallback), "QK intervention", 1e-4)
    title = fig.axes[0].get_title().replace("\n", " ")
    assert "(fallback pick: no layer-2 head has qk_identity_d_model >= 0.3" in title
    assert "L2H0 L2H1" in title
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any(t.startswith("0.01") for t in texts) and any(t.startswith("0.03") for t in texts)
    _assert_legend_off_points(fig)
    fig = plot_before_after(table.assign(picked_by=regular), "QK intervention", 1e-4)
    assert "fallback" not in fig.axes[0].get_title()
    _, all_three = heads_above_or_top(scores, 2, "qk_identity_d_model", 0.3, k=5)
    assert "; the 3 highest instead (all the layer has, 5 asked for): L2H0 " in all_three
    two_layers = scores.assign(layer=[0, 1, 1])
    heads, missing = heads_above_or_top(two_layers, 2, "qk_identity_d_model", 0.3, 2)
    assert heads == [] and missing == "the model has no layer 2 (layer 0, layer 1): no head picked"
    assert fallback_pick(missing) is None


def test_matrix_heatmaps_have_tick_and_axis_labels():
    def long(name, m):
        r, c = np.meshgrid(*map(np.arange, m.shape), indexing="ij")
        return pd.DataFrame(
            {"matrix": name, "row": r.ravel(), "col": c.ravel(), "value": m.ravel()}
        )

    big, small = np.arange(40 * 40, dtype=float).reshape(40, 40), np.eye(8)
    table = pd.concat([long("A (d_vocab basis)", big), long("B", small)])
    fig = plot_matrices(table, "title")
    heatmaps = [ax for ax in fig.axes if ax.get_title()]
    assert len(heatmaps) == 2
    for ax in heatmaps:
        assert ax.get_xlabel() and ax.get_ylabel()
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            assert labels and all(t.get_text() for t in labels)
    # a large matrix is thinned to every 5th component, a small one labelled in full
    assert [t.get_text() for t in heatmaps[0].get_xticklabels()][:3] == ["0", "5", "10"]
    assert "d_vocab component index" in heatmaps[0].get_xlabel()
    assert len(heatmaps[1].get_xticklabels()) == 8


def test_long_titles_wrap_without_an_orphan_and_series_legend_is_outside():
    title = (
        "Figure 17: residual stream before/after layer 0 (decoded), a_n + alpha a_(n-1) "
        "(alpha measured in Fig 8: 2.13; the paper's: 2.3) and the truth; alternating sample 3"
    )
    table = pd.DataFrame(
        {
            "dim": [0, 0, 1, 1] * 2,
            "n": [0, 1] * 4,
            "series": ["a"] * 4 + ["b"] * 4,
            "value": [0.0, 1.0, 2.0, 3.0, 1.0, 0.0, 3.0, 2.0],
        }
    )
    fig = plot_sequence_series(table, title, ["a", "b"])
    lines = fig.get_suptitle().split("\n")
    assert len(lines) > 1 and min(map(len, lines)) > 0.6 * max(map(len, lines))  # no orphan
    assert " ".join(lines) == title
    fig.canvas.draw()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    assert all(not _overlaps(box, ax.get_window_extent()) for ax in fig.axes)


def test_loss_curve_and_embedding_span_legends_are_outside_the_data():
    table = loss_curve_table(
        pd.DataFrame({"step": [10, 20], "train_loss": [1.0, 0.5], "heldout_mse": [0.9, 0.4]})
    )
    share = pd.DataFrame(
        {"share_outside": np.linspace(0.8, 0.88, 20), "chance_share": 0.8415}
    )  # the random direction's share coincides with the paper's and this run's mean
    for fig in (plot_loss_curve(table), plot_share_outside(share, paper_share=0.8415)):
        fig.canvas.draw()
        ax = fig.axes[0]
        assert not _overlaps(ax.get_legend().get_window_extent(), ax.get_window_extent())
    lines = [line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert len(lines) == 3
    styles = {(line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(styles) == 3  # told apart even where they coincide
    this_run, _, chance = lines
    assert chance.get_zorder() > this_run.get_zorder()  # the thin line is drawn on top
    assert chance.get_linewidth() < this_run.get_linewidth()


# --------------------------------------------------------------------------- the figure registry


def test_every_registry_figure_has_its_rule_and_caption_and_reads_real_cache_families():
    import re

    from affine_icl.activations import FAMILIES
    from affine_icl.figures.registry import CACHE_FAMILIES, FIGURES

    assert CACHE_FAMILIES == FAMILIES  # the registry's copy, for the DAG, of the cache's own
    rules = set()
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        rules |= set(re.findall(r"^(?:rule|use rule \w+ as) (\w+)", smk.read_text(), flags=re.M))
    for figure in FIGURES.values():
        assert figure.rule in rules, figure.rule
        assert (REPO / figure.caption).is_file(), figure.caption


def test_a_figure_names_its_place_in_the_paper():
    from affine_icl.figures.registry import Figure, paper_place

    assert paper_place("fig02_loss_curve") == "Fig. 02"
    assert paper_place("embedding_span") == "Sec. 4.4"
    assert paper_place("seeds_layer0_ov") == "Fig. 08"
    with pytest.raises(ValueError, match="registry"):
        paper_place("fig99_nothing")
    with pytest.raises(ValueError, match="place"):
        Figure("fig99_nothing", "Figure 99", "run", "nothing")
    with pytest.raises(ValueError, match="cache family"):
        Figure("fig99_nothing", "Fig. 99", "run", "nothing", ("resids",))


def test_a_heatmap_without_the_overlap_check_draws_the_same_artists_and_no_figure():
    import matplotlib.pyplot as plt
    import seaborn as sns

    from affine_icl.figures.style import draw_heatmap

    data = pd.DataFrame(np.arange(14 * 14, dtype=float).reshape(14, 14))
    drawn = []
    figs = []
    for check in (None, False):
        fig, ax = plt.subplots(layout="constrained")
        fig.canvas.mpl_connect("draw_event", lambda event, check=check: drawn.append(check))
        if check is None:
            sns.heatmap(data, ax=ax, vmin=0, vmax=200, cmap="viridis", cbar=False)
        else:
            draw_heatmap(
                data, ax, check_overlap=False, vmin=0, vmax=200, cmap="viridis", cbar=False
            )
        figs.append((fig, ax))
    assert drawn == [None]  # seaborn drew its figure once; the unchecked heatmap none
    (_, seaborn_ax), (_, ours) = figs
    assert np.array_equal(seaborn_ax.collections[0].get_array(), ours.collections[0].get_array())
    assert [t.get_text() for t in ours.get_xticklabels()] == [str(i) for i in range(14)]
    assert list(ours.get_xticks()) == list(seaborn_ax.get_xticks())
    assert list(ours.get_yticks()) == list(seaborn_ax.get_yticks())
    for fig, _ in figs:
        plt.close(fig)


def test_a_wrapped_title_keeps_a_number_with_the_word_before_it():
    from affine_icl.figures.style import wrap_balanced

    line = "highest previous_token_score in layer 0: L0H5 (previous_token_score 0.716)"
    wrapped = wrap_balanced(line, 48)
    lines = wrapped.split("\n")
    assert len(lines) == 2 and all(len(part) <= 48 for part in lines)
    assert "layer 0:" in wrapped  # Figure 18's title broke here: "... in layer" / "0: L0H5 ..."
    assert wrapped.replace("\n", " ") == line  # nothing lost, no other character changed
    assert wrap_balanced("a b c 1 2 3 4", 4).replace("\n", " ") == "a b c 1 2 3 4"
    assert wrap_balanced(line, len(line)) == line
