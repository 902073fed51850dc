"""The look every figure shares, and the helpers the figure modules draw with.

Importing it selects the non-interactive Agg backend and seaborn's theme before any figure is
drawn: every figure module imports it. :func:`save_figure` writes a PNG the same way for every
rule; :func:`plot_not_applicable` is the figure of a rule whose run has nothing to show (a 2-layer
model's layer-2 figure). The rest are shared drawing pieces: a title wrapped to the figure's
width, a labelled heatmap, one legend below an axes, MSE values as labelled points."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re
import textwrap
from unittest import mock

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import seaborn.matrix

sns.set_theme(style="whitegrid", context="notebook")


def plot_not_applicable(reason: str) -> plt.Figure:
    """A figure that exists for the DAG's sake and says, as its only content, why it is empty."""
    fig = plt.figure(figsize=(8, 3))
    fig.text(0.5, 0.5, textwrap.fill(reason, 70), ha="center", va="center", fontsize=13)
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=120)
    plt.close(fig)


#: A space between a word and the number after it ("layer 0", "sample 11000"): never a line break.
_WORD_NUMBER_SPACE = re.compile(r"(?<=[A-Za-z]) (?=[-+]?\d)")
_KEPT = "\N{NO-BREAK SPACE}"  # textwrap breaks at ASCII whitespace only


def wrap_balanced(line: str, width: int) -> str:
    """``line`` wrapped at word boundaries into as few lines as ``width`` allows, of about equal
    length, so that no short fragment is left alone on the last line; a number stays on the
    line of the word before it ("layer 0")."""
    if len(line) <= width:
        return line
    kept = _WORD_NUMBER_SPACE.sub(_KEPT, line)
    wrapped = textwrap.wrap(kept, width)
    for w in range(-(-len(line) // len(wrapped)), width):  # the narrowest as few lines fit in
        narrower = textwrap.wrap(kept, w)
        if len(narrower) <= len(wrapped):
            wrapped = narrower
            break
    return "\n".join(wrapped).replace(_KEPT, " ")


def suptitle(fig: plt.Figure, title: str) -> None:
    """A figure title wrapped to the figure's width, so a long title is never cut off."""
    width = max(30, int(fig.get_figwidth() * 8))  # about 8 characters per inch at this size
    lines = [wrap_balanced(line, width) for line in title.split("\n")]
    fig.suptitle("\n".join(lines))


def draw_heatmap(data, ax, check_overlap: bool = True, **kw) -> None:
    """``sns.heatmap(data, ax=ax, **kw)``; with ``check_overlap=False``, without the draw of the
    whole figure that seaborn makes after every heatmap.

    seaborn draws the figure (layout included) after each heatmap to see whether its tick labels
    overlap, and turns them if they do. A caller that sets the labels' rotation itself afterwards
    discards that answer, and in a figure of many heatmaps the draws are most of its time (8
    attention patterns: 5.5 of the rule's 7.9 s on the 2-core CPU; issue 31). Such a caller
    passes ``check_overlap=False``: the same artists, though the PNG's bytes can differ, as
    constrained layout converges to positions a sub-pixel apart without those draws."""
    if check_overlap:
        sns.heatmap(data, ax=ax, **kw)
        return
    # seaborn 0.13's own name for that draw; a seaborn without it fails here, by name
    with mock.patch.object(seaborn.matrix, "_draw_figure", lambda fig: None):
        sns.heatmap(data, ax=ax, **kw)


def heatmap(
    ax,
    matrix,
    title,
    xlabel,
    ylabel,
    center=0.0,
    annotate=False,
    cmap="RdBu_r",
    check_overlap=True,
    **kw,
):
    """A labelled diverging heatmap with its colourbar (:func:`draw_heatmap`), centred at
    ``center``, ``annotate``: the values printed in the cells."""
    draw_heatmap(
        matrix,
        ax,
        check_overlap,
        center=center,
        cmap=cmap,
        annot=annotate,
        fmt=".2f" if annotate else "",
        annot_kws={"size": 8},
        cbar=True,
        square=False,
        **kw,
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def legend_below(ax, ncol: int = 1, fontsize: int = 8) -> None:
    """One legend under ``ax`` (outside the data) with seaborn's hue entries, if any, followed
    by every labelled artist drawn on ``ax`` (reference lines, spans, fits)."""
    handles, labels = [], []
    old = ax.get_legend()
    if old is not None:  # seaborn's hue legend: keep its entries
        handles += list(old.legend_handles)
        labels += [t.get_text() for t in old.get_texts()]
        old.remove()
    for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    ax.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        ncol=ncol,
        fontsize=fontsize,
        frameon=False,
    )


def mse_points(ax, labels, values, notes, refs, label: str, xlabel: str) -> None:
    """MSE values as points on a log x axis, one row per label, each value (and its note)
    written next to its point; ``refs`` are (x, label, style) reference lines; the legend goes
    right of the axes, outside the data."""
    y = np.arange(len(labels))
    values = np.asarray(values, dtype=float)
    ax.scatter(values, y, s=55, color="C0", zorder=5, label=label)
    for yi, value, note in zip(y, values, notes, strict=True):
        ax.annotate(
            f"{value:.4g}{note}",
            (value, yi),
            xytext=(9, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            zorder=6,
        )
    for x, ref_label, style in refs:
        ax.axvline(x, label=ref_label, zorder=2, **style)
    ax.set_xscale("log")
    xs = np.concatenate([values, [x for x, _, _ in refs]])
    span = max(np.log10(xs.max() / xs.min()), 0.3)  # decades shown
    ax.set_xlim(xs.min() / 10 ** (0.1 * span), xs.max() * 10 ** (0.8 * span))  # room for text
    ax.set_yticks(y, labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first label on top
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # outside the data
