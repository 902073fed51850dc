"""Every quantitative statement of the paper, measured on this run, with a verdict.

What the paper says and reports is :mod:`affine_icl.paper`; the measurement of each claim is
code (below, by claim id); the criterion it is judged by is config
(``claims:`` in config.yaml), so a reader can see and change how strict each verdict is.
A criterion is one of

- ``{at_least: x, differs_down_to: y}``: reproduced if measured >= x; "differs in degree"
  if measured >= y; else not reproduced.
- ``{at_most: x, differs_up_to: y}``: the mirror image.
- ``{within: [lo, hi], differs_within: [lo2, hi2]}``: reproduced inside [lo, hi], differs in
  degree inside the wider interval, else not reproduced.

A measurement that cannot be made (NaN) is reported as "not measurable", never as reproduced.
A claim of the paper that makes no sense for the run's task family (``data.task``; the
checkerboard needs one scalar ``c < 0``) is "not applicable"; the claims the circuit story
predicts for the families of the paper's future work are listed for the runs of their family
only (:func:`listed_claims`).

Every measurement comes with its chance level (:class:`Measured`): what the quantity, or the
per-head score behind it, is when the effect is absent (uniform attention, the head's own
factors shuffled, no change; :mod:`affine_icl.analysis.chance`), and an effect size against
it. Which heads count is stated against chance (``analysis.*_min_ratio``, ``*_min_z``), and
:mod:`affine_icl.sensitivity` judges every verdict again over a range of thresholds and
definitions.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .analysis.ov_fits import ov_alpha
from .config import DataConfig, RunConfig
from .paper import PAPER, PAPER_CLAIMS, PaperClaim

REPRODUCED, DIFFERS, NOT_REPRODUCED, NOT_MEASURABLE, NOT_APPLICABLE = (
    "reproduced",
    "differs in degree",
    "not reproduced",
    "not measurable",
    "not applicable",
)


@dataclass(frozen=True)
class Measured:
    """A claim's measurement beside its chance level: ``chance`` is what the measured quantity,
    or the score behind it, gives when the effect is absent (uniform attention, shuffled
    weights, no change), ``effect`` an effect size of the scores against it (a ratio or a z);
    the claim's ``chance_as`` and ``effect_as`` say which. NaN where there is none."""

    value: float
    chance: float = math.nan
    effect: float = math.nan


#: ``measure(tables, params)``: the measurement from the run's tables and the analysis
#: parameters, a plain number where it has no chance level.
Measure = Callable[[Mapping[str, pd.DataFrame], Mapping[str, Any]], "Measured | float"]


@dataclass(frozen=True)
class Claim:
    """A claim of the paper (:data:`affine_icl.paper.PAPER_CLAIMS`) and how it is measured.

    ``knob``: the ``analysis`` parameter that decides which heads count (the definition's
    threshold, varied by :mod:`affine_icl.sensitivity`) and ``knob_chance`` the value it
    would have at chance (1 for a ratio to chance, 0 for a z); ``bounds``: the values the
    measurement can take, where it is bounded (a share, a cosine). ``absence``: the claim is
    that an effect is absent or small (an MSE that does not change), so what chance gives
    passes its criterion by design (:func:`chance_note`).
    """

    said: PaperClaim
    measure: Measure
    unit: str = ""
    chance_as: str = ""
    effect_as: str = ""
    knob: str | None = None
    knob_chance: float = 0.0
    bounds: tuple[float, float] = (-math.inf, math.inf)
    absence: bool = False

    @property
    def id(self) -> str:
        return self.said.id

    @property
    def chance_in_measured_units(self) -> bool:
        """Whether ``chance`` is a value of the measurement itself; a head count's chance is
        that of the score behind it (per head), not a number of heads."""
        return self.knob is None

    def measured(self, tables: Mapping[str, pd.DataFrame], params: Mapping[str, Any]) -> Measured:
        value = self.measure(tables, params)
        return value if isinstance(value, Measured) else Measured(float(value))


def verdict(value: float, criterion: Mapping[str, Any]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURABLE
    if "at_least" in criterion:
        if value >= criterion["at_least"]:
            return REPRODUCED
        return DIFFERS if value >= criterion.get("differs_down_to", math.inf) else NOT_REPRODUCED
    if "at_most" in criterion:
        if value <= criterion["at_most"]:
            return REPRODUCED
        return DIFFERS if value <= criterion.get("differs_up_to", -math.inf) else NOT_REPRODUCED
    lo, hi = criterion["within"]
    if lo <= value <= hi:
        return REPRODUCED
    lo2, hi2 = criterion.get("differs_within", (lo, hi))
    return DIFFERS if lo2 <= value <= hi2 else NOT_REPRODUCED


#: The judgements in order, from the paper's result to its absence (lower: closer).
VERDICT_RANK: dict[str, int] = {REPRODUCED: 0, DIFFERS: 1, NOT_REPRODUCED: 2}


def chance_as_good(chance_verdict: str, verdict_: str) -> bool:
    """Whether a value at chance, judged ``chance_verdict``, does as well as the measurement
    judged ``verdict_`` (no chance level, ""; counts as worse)."""
    return VERDICT_RANK.get(chance_verdict, 3) <= VERDICT_RANK.get(verdict_, 3)


def chance_passes(criterion: Mapping[str, Any], chance: float | None) -> bool:
    """Whether a measurement equal to ``chance`` would be judged reproduced (NaN: no)."""
    if chance is None or math.isnan(chance):
        return False
    return verdict(chance, criterion) == REPRODUCED


def describe(criterion: Mapping[str, Any]) -> str:
    if "at_least" in criterion:
        text = f">= {criterion['at_least']:g}"
        extra = criterion.get("differs_down_to")
        return text + (f" (differs in degree if >= {extra:g})" if extra is not None else "")
    if "at_most" in criterion:
        text = f"<= {criterion['at_most']:g}"
        extra = criterion.get("differs_up_to")
        return text + (f" (differs in degree if <= {extra:g})" if extra is not None else "")
    lo, hi = criterion["within"]
    text = f"in [{lo:g}, {hi:g}]"
    if "differs_within" in criterion:
        lo2, hi2 = criterion["differs_within"]
        text += f" (differs in degree if in [{lo2:g}, {hi2:g}])"
    return text


# --------------------------------------------------------------------------- measurements


def _heads(t, layer):
    scores = t["head_scores"]
    return scores[scores["layer"] == layer]


def _count(t, layer, column, threshold, below=False) -> float:
    heads = _heads(t, layer)
    return float(
        (heads[column] <= threshold).sum() if below else (heads[column] >= threshold).sum()
    )


def _heads_beyond_chance(t, layer, score, effect, threshold, below=False) -> Measured:
    """Heads of ``layer`` whose ``effect`` column (a ratio to chance or a z) is at least
    ``threshold`` (at most, ``below``), with the layer's median chance level of ``score`` and
    its heads' median effect."""
    heads = _heads(t, layer)
    return Measured(
        _count(t, layer, effect, threshold, below),
        float(
            heads[
                f"{score}_chance" if f"{score}_chance" in heads else f"{score}_null_mean"
            ].median()
        ),
        float(heads[effect].median()),
    )


def _attribution(t, layer, from_pos):
    a = t["head_attribution"]
    a = a[(a["variant"] == "target") & (a["layer"] == layer) & (a["position"] >= from_pos)]
    return a.groupby("head")["attribution"].mean()


def _regressions(t, source):
    r = t["ov_regressions"]
    if "reading" in r:
        r = r[r["reading"] == "d_model"]
    return r[r["source"] == source]


def _r2(t, source) -> Measured:
    fits = _regressions(t, source)
    chance = float(fits["r2_chance"].iloc[0]) if "r2_chance" in fits else math.nan
    value = float(fits["r2"].mean())
    return Measured(value, chance, value / chance)


def _share(values: pd.Series) -> Measured:
    """A share of heads (e.g. with positive attribution): chance 0.5, a coin flip per head."""
    value = float(values.mean())
    return Measured(value, 0.5, value / 0.5)


def _checkerboard(t, absolute: bool = False) -> Measured:
    """Layer 2's mean checkerboard difference (its absolute value), chance 0, median z."""
    difference = float(_heads(t, 2)["checkerboard_difference"].mean())
    z = float(_heads(t, 2)["checkerboard_z"].median())
    return Measured(abs(difference) if absolute else difference, 0.0, z)


def _mlp_by_position(t, from_pos) -> pd.Series:
    """Summed MLP attribution to the target at each position from ``from_pos`` on."""
    mlp = t["mlp_attribution"].query("variant == 'target'")
    return mlp[mlp["position"] >= from_pos].groupby("position")["attribution"].sum()


def _correlation_at_alpha(shape: pd.DataFrame, alpha: float) -> float:
    """The ``mean_correlation`` of the row of ``residual_shape.csv`` compared with
    ``a_n + alpha a_(n-1)`` for this ``alpha`` (the correlation depends on alpha alone)."""
    rows = shape[np.isclose(shape["alpha"], alpha)]
    if rows.empty:
        raise ValueError(f"residual_shape: no row compares with alpha {alpha:g}")
    return float(rows["mean_correlation"].iloc[0])


def _outside_share_excess(span: pd.DataFrame) -> Measured:
    """The mean share outside span(W_E) as an excess over a random direction's, in that share's
    standard deviations (chance 0; the share itself as the effect column). The paper's 84.15% is
    +0.35 sd: what chance gives. NaN for a table without the random direction's sd."""
    share = float(span["share_outside"].mean())
    if "chance_share_sd" not in span:
        return Measured(math.nan, 0.0, share)
    chance, sd = float(span["chance_share"].iloc[0]), float(span["chance_share_sd"].iloc[0])
    return Measured((share - chance) / sd, 0.0, share)


def _mean_ablation(t) -> Measured:
    return Measured(float(t["mean_ablation"].iloc[-1]["ratio"]), 1.0)


def _qk_intervention(t) -> Measured:
    table = t["qk_intervention"]
    if "scale" in table:
        table = table[table["scale"] == "unit"]
    row = table.iloc[0]
    return Measured(float(row["ratio"]) if row["n_heads"] > 0 else math.nan, 1.0)


def _head_count(
    layer: int, score: str, effect: str, knob: str, unit: str, below: bool = False
) -> dict[str, Any]:
    """A claim that counts the heads of ``layer`` whose ``effect`` (a ratio to the uniform share,
    ``*_ratio``, or a z against the shuffled null, ``*_z``) reaches ``analysis.<knob>`` (or, with
    ``below``, lies at least that far below)."""
    ratio = effect.endswith("_ratio")
    return dict(
        measure=lambda t, p: _heads_beyond_chance(
            t, layer, score, effect, -p[knob] if below else p[knob], below
        ),
        unit=unit,
        chance_as=(
            "uniform share (median over the layer's heads)"
            if ratio
            else "the score with the head's factors shuffled (median null mean)"
        ),
        effect_as=f"median {'ratio to uniform' if ratio else 'z'} over layer-{layer} heads",
        knob=knob,
        knob_chance=1.0 if ratio else 0.0,
        bounds=(0.0, math.inf),
    )


#: How each claim of :data:`~affine_icl.paper.PAPER_CLAIMS` is measured: ``{id: keyword
#: arguments of Claim}`` (the measure, what the number is, its chance level and effect size).
MEASUREMENTS: dict[str, dict[str, Any]] = {
    "final_mse": dict(
        measure=lambda t, p: float(t["train_log"]["heldout_mse"].dropna().iloc[-1]),
        chance_as="none: an absolute target",
        bounds=(0.0, math.inf),
    ),
    "layer0_previous_token_heads": _head_count(
        0,
        "previous_token",
        "previous_token_ratio",
        "previous_token_min_ratio",
        "layer-0 heads whose attention on the previous vector is >= "
        "analysis.previous_token_min_ratio x the uniform share",
    ),
    "layer1_second_vector_heads": _head_count(
        1,
        "key1",
        "key1_ratio",
        "key1_min_ratio",
        "layer-1 heads whose attention on the second vector is >= "
        "analysis.key1_min_ratio x the uniform share",
    ),
    "layer2_checkerboard": dict(
        measure=lambda t, p: _checkerboard(t),
        unit="same-parity attention mass, alternating minus non-alternating, mean over "
        "layer-2 heads",
        chance_as="no difference between the groups",
        effect_as="median z over layer-2 heads against a permutation of the sequences' labels",
        bounds=(-1.0, 1.0),
    ),
    "layer0_attribution_positive": dict(
        measure=lambda t, p: _share(_attribution(t, 0, p["loss_from_index"]) > 0),
        unit="share of layer-0 heads with positive mean attribution",
        chance_as="a coin flip per head",
        effect_as="ratio to chance",
        bounds=(0.0, 1.0),
    ),
    "layer1_attribution_small": dict(
        measure=lambda t, p: Measured(
            float(
                _attribution(t, 1, p["loss_from_index"]).abs().mean()
                / _attribution(t, 0, p["loss_from_index"]).abs().mean()
            ),
            1.0,
        ),
        unit="mean |attribution| of layer-1 heads / that of layer-0 heads",
        chance_as="layers 1 and 0 alike",
        bounds=(0.0, math.inf),
    ),
    "layer2_attribution_negative": dict(
        measure=lambda t, p: _share(_attribution(t, 2, p["loss_from_index"]) < 0),
        unit="share of layer-2 heads with negative mean attribution",
        chance_as="a coin flip per head",
        effect_as="ratio to chance",
        bounds=(0.0, 1.0),
    ),
    "layer0_ov_r2": dict(
        measure=lambda t, p: _r2(t, "residual"),
        unit="mean per-vector R^2 in the d_model basis",
        chance_as="components shuffled: 1/(d_model - 1)",
        effect_as="ratio to chance",
        bounds=(-math.inf, 1.0),
    ),
    "layer0_ov_slope": dict(
        measure=lambda t, p: Measured(ov_alpha(t["ov_regressions"], reading="d_model"), 0.0),
        unit="median per-vector slope",
        chance_as="components shuffled",
    ),
    "random_ov_r2": dict(
        measure=lambda t, p: _r2(t, "random"),
        unit="mean per-vector R^2",
        chance_as="components shuffled: 1/(d_model - 1)",
        effect_as="ratio to chance",
        bounds=(-math.inf, 1.0),
    ),
    "ov_r2_gap": dict(
        measure=lambda t, p: Measured(_r2(t, "residual").value - _r2(t, "random").value, 0.0),
        unit="R^2 gap",
        chance_as="residual and random vectors alike",
        bounds=(-1.0, 1.0),
    ),
    "outside_embedding_share": dict(
        measure=lambda t, p: _outside_share_excess(t["embedding_span"]),
        unit="mean share of layer-0 OV output outside span(W_E), minus a random direction's "
        "(sqrt(1 - rank(W_E)/d_model)), in standard deviations of a random direction's share",
        chance_as="a random direction (excess 0)",
        effect_as="the mean share itself",
    ),
    "layer1_mean_ablation": dict(
        measure=lambda t, p: _mean_ablation(t),
        unit="MSE ratio, all layer-1 heads mean-ablated / none",
        chance_as="no change",
        bounds=(0.0, math.inf),
        absence=True,
    ),
    "layer1_ov_low_rank": dict(
        measure=lambda t, p: Measured(
            float(_heads(t, 1)["ov_rank_ratio"].median()),
            1.0,
            float(_heads(t, 1)["ov_effective_rank"].median()),
        ),
        unit="median over layer-1 heads of the OV's effective rank / that of its factors shuffled",
        chance_as="the shuffled null (ratio 1)",
        effect_as="median effective rank itself",
        bounds=(0.0, math.inf),
    ),
    "layer2_negative_copying": _head_count(
        2,
        "eigenvalue_score",
        "eigenvalue_score_z",
        "negative_copying_min_z",
        "layer-2 heads whose OV eigenvalue score is >= analysis.negative_copying_min_z sd "
        "below its shuffled null",
        below=True,
    ),
    "layer2_qk_identity": _head_count(
        2,
        "qk_identity_d_model",
        "qk_identity_d_model_z",
        "qk_identity_min_z",
        "layer-2 heads whose QK identity score is >= analysis.qk_identity_min_z sd above "
        "its shuffled null",
    ),
    "qk_intervention": dict(
        measure=lambda t, p: _qk_intervention(t),
        unit="MSE ratio after / before; heads and why in qk_intervention.csv (picked_by)",
        chance_as="no change",
        bounds=(0.0, math.inf),
        absence=True,
    ),
    "mlp_final_positions": dict(
        measure=lambda t, p: Measured(float(_mlp_by_position(t, 0).iloc[-3:].mean()), 0.0),
        unit="summed MLP attribution, mean over the last 3 positions",
        chance_as="no push either way",
    ),
    "layer0_estimate": dict(
        measure=lambda t, p: Measured(
            float(
                t["residual_after_layer0"]
                .query("series == 'decoded residual after layer 0'")["cosine_to_target"]
                .mean()
            ),
            0.0,
        ),
        unit="mean cosine similarity with a_(n+1)",
        chance_as="a random direction",
        bounds=(-1.0, 1.0),
    ),
    "layer0_shape": dict(
        measure=lambda t, p: Measured(_correlation_at_alpha(t["residual_shape"], PAPER.alpha), 0.0),
        unit="correlation over positions of the decoded residual after layer 0 with "
        f"a_n + {PAPER.alpha:g} a_(n-1) (the paper's alpha)",
        chance_as="unrelated series",
        bounds=(-1.0, 1.0),
    ),
    "linear_offset_heads": _head_count(
        0,
        "offsets",
        "offsets_ratio",
        "previous_token_min_ratio",
        "layer-0 heads whose attention on the k previous vectors is >= "
        "analysis.previous_token_min_ratio x the uniform share of k keys",
    ),
    "diagonal_no_checkerboard": dict(
        measure=lambda t, p: _checkerboard(t, absolute=True),
        unit="|same-parity attention mass, c_1 < 0 minus c_1 > 0|, mean over layer-2 heads "
        "(c_1: the first component's coefficient)",
        chance_as="no difference between the groups",
        effect_as="median z over layer-2 heads against a permutation of the sequences' labels",
        bounds=(0.0, 1.0),
        absence=True,
    ),
    "polynomial_mlp_positions": dict(
        measure=lambda t, p: _share(_mlp_by_position(t, p["loss_from_index"]) > 0),
        unit="share of trained positions (>= train.loss_from_index) where the summed MLP "
        "attribution to a_(n+1) is positive",
        chance_as="a coin flip per position",
        effect_as="ratio to chance",
        bounds=(0.0, 1.0),
    ),
}

CLAIMS: tuple[Claim, ...] = tuple(Claim(said, **MEASUREMENTS[said.id]) for said in PAPER_CLAIMS)

#: Claims whose ``chance`` column is in the units of their measurement (a head count's chance
#: is that of the per-head score behind it).
CHANCE_IN_UNITS: dict[str, bool] = {c.id: c.chance_in_measured_units for c in CLAIMS}


def listed_claims(task: str) -> tuple[Claim, ...]:
    """The claims a run of ``task`` lists: every claim of the paper (those that do not apply to
    the task as "not applicable") and the future-work claims of its own task."""
    return tuple(c for c in CLAIMS if c.said.listed_for_every_task or c.said.applies_to(task))


def judged_claims(task: str, n_layers: int = 3) -> tuple[Claim, ...]:
    """The claims that are measured and judged for a run of ``task`` with ``n_layers`` layers."""
    return tuple(c for c in CLAIMS if c.said.applies_to(task) and n_layers >= c.said.layers)


def _why_not_applicable(claim: Claim, task: str, n_layers: int) -> str:
    """The criterion cell of a claim a run does not judge: another task's, or too few layers."""
    if not claim.said.applies_to(task):
        return f"-: not a {task} claim"
    return f"-: needs {claim.said.layers} layers, the model has {n_layers}"


def model_layers(tables: Mapping[str, pd.DataFrame]) -> int:
    """The number of layers of the model the claim tables describe (from its head scores)."""
    return int(tables["head_scores"]["layer"].max()) + 1


def run_task(params: Mapping[str, Any]) -> str:
    """The task family of the run whose ``params`` these are (``params["data"]``, a
    :class:`~affine_icl.config.DataConfig`; the paper's affine task when absent)."""
    return params.get("data", DataConfig()).task


def chance_note(claim: Claim, passes: bool) -> str:
    """What a reader must know when chance itself passes a claim's criterion (``passes``,
    :func:`chance_passes`): for a claim that an effect is absent that is its design; for any
    other the verdict cannot tell the model from chance. "" when chance fails."""
    if not passes:
        return ""
    if claim.absence:
        return "chance passes by design: the claim is that the effect is absent or small"
    return "chance passes this criterion: the verdict cannot tell the model from chance"


def claims_table(
    tables: Mapping[str, pd.DataFrame],
    criteria: Mapping[str, Mapping],
    params: Mapping[str, Any],
    margins: pd.DataFrame | None = None,
    readings: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per claim: id, section, claim, paper, measured and what was measured, its
    chance level and effect size (:class:`Measured`) and what they are, criterion, verdict,
    ``chance_passes`` (whether a measurement at chance would be reproduced too) and
    ``chance_note`` (:func:`chance_note`). Given ``margins``
    (:func:`affine_icl.sensitivity.margins_table`), the verdict's margin in strictness factors
    (``loosest``, ``strictest``, ``margin``); given ``readings``
    (:func:`affine_icl.sensitivity.better_readings`), the other reading of the paper's words
    that gets closer to its result (``other_reading``, ``other_value``, ``other_chance``,
    ``other_verdict``, ``other_chance_verdict``; empty where none does)."""
    task, n_layers = run_task(params), model_layers(tables)
    judged = {c.id for c in judged_claims(task, n_layers)}
    missing = [c for c in judged if c not in criteria]
    if missing:
        raise KeyError(f"claims: no criterion configured for {', '.join(sorted(missing))}")
    margin_of = margins.set_index("claim_id") if margins is not None else None
    reading_of = readings.set_index("claim_id") if readings is not None else None
    rows = []
    for claim in listed_claims(task):
        applies = claim.id in judged
        m = claim.measured(tables, params) if applies else Measured(math.nan)
        passes = (
            applies
            and claim.chance_in_measured_units
            and chance_passes(criteria[claim.id], m.chance)
        )
        row = {
            "claim_id": claim.id,
            "section": claim.said.section,
            "claim": claim.said.statement,
            "paper": claim.said.reported,
            "measured": m.value,
            "measured_as": claim.unit,
            "chance": m.chance,
            "chance_as": claim.chance_as,
            "effect": m.effect,
            "effect_as": claim.effect_as,
            "criterion": describe(criteria[claim.id])
            if applies
            else _why_not_applicable(claim, task, n_layers),
            "verdict": verdict(m.value, criteria[claim.id]) if applies else NOT_APPLICABLE,
            "chance_passes": bool(passes),
            "chance_note": chance_note(claim, bool(passes)),
        }
        if margin_of is not None:
            found = claim.id in margin_of.index
            row |= {
                key: margin_of.at[claim.id, key] if found else default
                for key, default in (("loosest", math.nan), ("strictest", math.nan))
            } | {"margin": margin_of.at[claim.id, "margin"] if found else "-"}
        if reading_of is not None:
            found = claim.id in reading_of.index
            row |= {
                f"other_{key}": reading_of.at[claim.id, key] if found else default
                for key, default in (
                    ("reading", ""),
                    ("value", math.nan),
                    ("chance", math.nan),
                    ("verdict", ""),
                    ("chance_verdict", ""),
                )
            }
        rows.append(row)
    return pd.DataFrame(rows)


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


def protocol_differences(run: RunConfig) -> list[str]:
    """Where a run's weight settings depart from the paper's protocol (:class:`RunConfig`'s
    defaults, as in config.yaml), as ``"train.steps = 200 (paper: 100000)"``; the seed and the
    logging cadence do not count. ``model.init``, which the paper does not state, is named
    against the default: ``"model.init = transformer_lens (default: torch; the paper does not
    say)"``."""
    protocol = RunConfig()
    paper, ran = protocol.weights_dict(), run.weights_dict()
    ran["model"].setdefault("init", run.model.init)  # left out of the hashed settings
    differences = []
    for section, values in ran.items():
        if not isinstance(values, dict):  # training_arithmetic: code, not a setting
            continue
        for key, value in values.items():
            # a setting the protocol's dict leaves out (model.init, a task's order) is the
            # protocol's default
            expected = paper[section].get(key, getattr(getattr(protocol, section), key))
            if key == "seed" or value == expected:
                continue
            source = (
                f"default: {_plain(expected)}; the paper does not say"
                if f"{section}.{key}" == "model.init"
                else f"paper: {_plain(expected)}"
            )
            differences.append(f"{section}.{key} = {_plain(value)} ({source})")
    return differences


def protocol_note(name: str, run: RunConfig) -> str:
    """One line on what run ``name`` trained, and whether that is the paper's protocol."""
    differs = protocol_differences(run)
    return f"Run {name}: seed {run.train.seed}, {run.train.steps:,} training steps; " + (
        "not the paper's protocol: " + "; ".join(differs) + "."
        if differs
        else "the paper's protocol."
    )


def _plain(value: Any) -> str:
    """A config value as config.yaml would write it: 0.0001 as 1e-04, a tuple as a list."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


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
