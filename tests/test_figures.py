"""Figure tables: the numbers plotted are the numbers computed."""

import numpy as np
import pandas as pd

from affine_icl.config import DataConfig
from affine_icl.data import SEQUENCE_TYPES, example_sequences
from affine_icl.figures import (
    loss_curve_table,
    plot_loss_curve,
    plot_sequence_types,
    sequence_types_table,
)


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
