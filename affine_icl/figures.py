"""Tables behind the figures (pure functions of data) and the plots drawn from those tables.

Every figure is a pair: ``<name>_table(...) -> DataFrame`` computes, ``plot_<name>(table)``
draws. Scripts write both the PNG and the table, so a reader can check any plotted number.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")


# --------------------------------------------------------------------------- Figure 1

def sequence_types_table(examples: pd.DataFrame, dims_shown: int) -> pd.DataFrame:
    """Figure 1's data: the example sequences, first ``dims_shown`` vector components.

    Rows keep the regimes in the order given (the paper's: oscillating, decaying, growing).
    """
    table = examples[examples["dim"] < dims_shown]
    order = {name: i for i, name in enumerate(dict.fromkeys(table["sequence_type"]))}
    table = table.assign(_order=table["sequence_type"].map(order))
    table = table.sort_values(["_order", "dim", "n"]).drop(columns="_order")
    return table.reset_index(drop=True)


def plot_sequence_types(table: pd.DataFrame) -> plt.Figure:
    """One panel per regime (oscillating, decaying, growing); one line per vector component."""
    types = list(dict.fromkeys(table["sequence_type"]))
    fig, axes = plt.subplots(1, len(types), figsize=(5 * len(types), 4), squeeze=False)
    n_dims = table["dim"].nunique()
    palette = sns.color_palette("husl", n_dims)
    for ax, name in zip(axes[0], types):
        sub = table[table["sequence_type"] == name]
        sns.lineplot(data=sub, x="n", y="value", hue="dim", palette=palette, legend=False,
                     ax=ax, linewidth=1, marker="o", markersize=3)
        ax.set_title(f"{name}, c = {sub['c'].iloc[0]:.2f}")
        ax.set_xlabel("term index n")
        ax.set_ylabel("component value of a_n (normalised)")
    fig.suptitle(
        f"Figure 1: types of affine recurrence a_n = c a_(n-1) + d ({n_dims} components, one colour each)"
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Figure 2

def loss_curve_table(log: pd.DataFrame) -> pd.DataFrame:
    """Figure 2's data in long form: step, series (train loss / held-out MSE), value."""
    long = log.melt(id_vars="step", value_vars=["train_loss", "heldout_mse"],
                    var_name="series", value_name="mse").dropna(subset=["mse"])
    names = {"train_loss": "training loss (mean over log window)",
             "heldout_mse": "held-out MSE (evaluation population subset)"}
    long["series"] = long["series"].map(names)
    return long.reset_index(drop=True)


def plot_loss_curve(table: pd.DataFrame, paper_mse: float) -> plt.Figure:
    """MSE against optimizer step on a log scale, with the paper's reported final MSE."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sns.lineplot(data=table, x="step", y="mse", hue="series", ax=ax, linewidth=1.2)
    ax.set_yscale("log")
    ax.axhline(paper_mse, color="black", linestyle="--", linewidth=1,
               label=f"paper's final MSE ({paper_mse:g})")
    held = table[table["series"].str.startswith("held-out")]
    if len(held):
        last = held.iloc[-1]
        ax.annotate(f"final held-out MSE {last['mse']:.2e}", (last["step"], last["mse"]),
                    textcoords="offset points", xytext=(-10, 12), ha="right", fontsize=9)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("MSE on predicted terms a_3 onward (log scale)")
    ax.set_title("Figure 2: loss as a function of training steps")
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=120)
    plt.close(fig)
