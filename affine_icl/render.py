"""Claims tables as people read them: Markdown (claims.md, the README) and stand-alone HTML pages
(claims.html, the across-runs summary), verdicts coloured, each with its margin, any chance note
and the other reading of the paper's words beside it. Rendering only: the numbers come from
:mod:`affine_icl.claims` and :mod:`affine_icl.sensitivity`."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .claims.verdicts import (
    DIFFERS,
    NOT_APPLICABLE,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    chance_as_good,
)


def other_reading_text(
    reading: str, value: float, chance: float, verdict_: str, chance_verdict: str
) -> str:
    """The other reading of a claim as one phrase, its chance level beside it and, where a
    value at chance would be judged as well or better, that said: "read out like the final
    residual: 0.7426, differs in degree (chance 0.9983: differs in degree too)"; "" where
    there is none."""
    if not isinstance(reading, str) or not reading:
        return ""
    text = f"{reading}: {value:.4g}, {verdict_}"
    if isinstance(chance, float) and not math.isnan(chance):
        as_good = chance_as_good(chance_verdict, verdict_)
        text += f" (chance {chance:.4g}" + (f": {chance_verdict} too)" if as_good else ")")
    return text


def _with_note(value: float, note: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.4g} ({note})" if note else f"{value:.4g}"


def other_readings_column(table: pd.DataFrame) -> list[str]:
    """Each row's other reading (``other_*`` columns of :func:`claims_table`) as one phrase
    (:func:`other_reading_text`); "" for tables without them."""
    if "other_reading" not in table:
        return [""] * len(table)
    columns = ["other_reading", "other_value", "other_chance", "other_verdict"]
    columns.append("other_chance_verdict")
    return [
        other_reading_text(*(row[c] for c in columns))
        for _, row in table[columns].fillna({"other_chance_verdict": ""}).iterrows()
    ]


def verdict_notes(table: pd.DataFrame) -> list[str]:
    """Per row, what qualifies its verdict: the margin and, where chance passes the criterion,
    :func:`chance_note`'s words."""
    margins = table["margin"] if "margin" in table else pd.Series([""] * len(table))
    notes = table["chance_note"] if "chance_note" in table else pd.Series([""] * len(table))
    return [
        "; ".join(t for t in (m, n) if isinstance(t, str) and t and t != "-")
        for m, n in zip(margins, notes, strict=True)
    ]


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table as people read it (claims.md): chance and effect with what they are,
    the verdict with its margin and any chance note, and the other reading of the paper's
    words that gets closer to its result."""
    shown = table.assign(
        chance=[_with_note(v, n) for v, n in zip(table["chance"], table["chance_as"], strict=True)],
        effect=[_with_note(v, n) for v, n in zip(table["effect"], table["effect_as"], strict=True)],
        **{"verdict's margin and chance": verdict_notes(table)},
        **{"another reading the paper allows": other_readings_column(table)},
    )
    columns = ["claim_id", "section", "claim", "paper", "measured", "measured_as", "chance"]
    columns += ["effect", "criterion", "verdict", "verdict's margin and chance"]
    return shown[columns + ["another reading the paper allows"]]


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown table (no extra dependency); a missing number (NaN) shows as "-"."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        cells = [
            ("-" if math.isnan(v) else f"{v:.4g}") if isinstance(v, float) else str(v) for v in row
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


#: The colour class of each verdict in the HTML tables: green, amber, red, grey.
VERDICT_CLASSES: dict[str, str] = {
    REPRODUCED: "holds",
    DIFFERS: "partial",
    NOT_REPRODUCED: "fails",
    NOT_MEASURABLE: "unknown",
    NOT_APPLICABLE: "unknown",
}

_LEGEND = {
    "holds": "reproduced: the criterion is met",
    "partial": "differs in degree: outside the criterion, inside its wider band",
    "fails": "not reproduced",
    "unknown": "not measurable in this run, or not applicable to its task",
}

_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .4em; }
p { margin: .3em 0; }
.note { background: #fff3cd; border-left: 4px solid #e0a800; padding: .3em .6em; }
table { border-collapse: collapse; margin-top: .8em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; vertical-align: top; text-align: left; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td small { display: block; font-size: .8em; }
.holds { background: #c8e6c9; } .partial { background: #ffe0a3; }
.fails { background: #ffcdd2; } .unknown { background: #e0e0e0; }
.holds, .partial, .fails, .unknown { white-space: nowrap; }
td.long { min-width: 16em; max-width: 32em; }
td small { color: #555; white-space: normal; }
td.num small { min-width: 8em; max-width: 14em; margin-left: auto; }
.badge { padding: .1em .5em; border-radius: .6em; margin-right: .4em; white-space: nowrap; }
"""


def _cell(value: Any) -> tuple[str, bool]:
    """A cell's text and whether it is a number."""
    if isinstance(value, float | np.floating):
        return ("n/a" if math.isnan(value) else f"{value:.4g}"), True
    if isinstance(value, int | np.integer):
        return str(value), True
    return str(value), False


def html_table(
    table: pd.DataFrame,
    title: str,
    intro: Sequence[str] = (),
    notes: Sequence[str] = (),
    classes: Mapping[str, Sequence[str]] | None = None,
    subtexts: Mapping[str, Sequence[str]] | None = None,
    legend: Mapping[str, str] = _LEGEND,
) -> str:
    """A stand-alone HTML page: ``title``, a paragraph per ``intro`` line, a highlighted one
    per warning in ``notes``, a colour legend and ``table``. ``classes`` gives, for some
    columns, each cell's colour class (a key of ``legend``); ``subtexts`` a small second line
    per cell. All text is escaped."""
    classes, subtexts = classes or {}, subtexts or {}
    esc = html.escape
    head = "".join(f"<th>{esc(str(c))}</th>" for c in table.columns)
    rows = []
    for i in range(len(table)):
        cells = []
        for column in table.columns:
            text, numeric = _cell(table[column].iloc[i])
            colour = classes.get(column, [""] * len(table))[i]
            css = [c for c in (colour, numeric and "num", len(text) > 40 and "long") if c]
            sub = subtexts.get(column, [""] * len(table))[i]
            attr = f' class="{" ".join(css)}"' if css else ""
            extra = f"<small>{esc(sub)}</small>" if sub else ""
            cells.append(f"<td{attr}>{esc(text)}{extra}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    key = "".join(f'<span class="badge {c}">{esc(t)}</span>' for c, t in legend.items())
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{esc(title)}</h1>",
            *(f"<p>{esc(line)}</p>" for line in intro),
            *(f'<p class="note">{esc(n)}</p>' for n in notes),
            f"<p>Colours: {key}</p>",
            f"<table><thead><tr>{head}</tr></thead><tbody>",
            *rows,
            "</tbody></table></body></html>",
            "",
        ]
    )


def to_html(
    table: pd.DataFrame,
    title: str,
    intro: Sequence[str] = (),
    notes: Sequence[str] = (),
    robust_rule: str = "",
) -> str:
    """One run's claims table (:func:`claims_table`) as an HTML page, verdicts coloured and
    counted above the table (and the robust margins, with ``robust_rule`` saying what robust
    means); ``intro`` and ``notes`` (warnings) as in :func:`html_table`."""
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{v}: {counts[v]}" for v in VERDICT_CLASSES if v in counts)
    # how it was measured and the criterion go under the claim (a second line), so claim and
    # verdict stay in view without scrolling sideways
    columns = ["section", "claim_id", "claim", "paper", "measured", "chance", "effect", "verdict"]
    shown = table[columns].rename(columns={"claim_id": "id", "measured": "this run"})
    how = [
        "; ".join(
            f"{label}: {text}" for label, text in (("measured as", m), ("criterion", c)) if text
        )
        for m, c in zip(table["measured_as"].fillna(""), table["criterion"].fillna(""), strict=True)
    ]
    shown = shown.assign(**{"another reading": other_readings_column(table)})
    extra = []
    if "margin" in table:
        robust = int(table["margin"].astype(str).str.contains("(robust", regex=False).sum())
        extra.append(
            f"Beneath each verdict its margin: how much stricter or looser its definition can be "
            f"made before the verdict changes; robust: {robust}{robust_rule and f' ({robust_rule})'}."
        )
    passes = table["chance_passes"] if "chance_passes" in table else pd.Series([False])
    if passes.any():
        extra.append(
            f"Claims whose criterion a measurement at chance would pass too: {int(passes.sum())} "
            "(said beneath the verdict)."
        )
    return html_table(
        shown,
        title,
        [*intro, f"Verdicts: {summary}.", *extra],
        notes,
        classes={"verdict": [VERDICT_CLASSES.get(v, "") for v in table["verdict"]]},
        subtexts={
            "claim": how,
            "chance": table["chance_as"].fillna("").tolist(),
            "effect": table["effect_as"].fillna("").tolist(),
            "verdict": verdict_notes(table),
        },
    )
