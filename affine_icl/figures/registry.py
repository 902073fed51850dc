"""Every figure the workflow draws, once: its rule, its place in the paper, whose it is, what it
shows and which activations it reads.

The lists that name figures are built from :data:`FIGURES`, so a new figure is one entry here
(and its rule, script and caption): the workflow's targets and report labels
(``workflow/rules/common.smk``), the tests' per-run figures (``tests/conftest.py``) and the
README's figure table (``python -m affine_icl.readme --figures``). Standard library only: the
Snakefile imports it while it builds the DAG, and no figure's code depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

#: Whose figure it is: of the data (Figure 1), of each run, or of all runs together.
Scope = Literal["data", "run", "runs"]
SCOPES = get_args(Scope)

#: The places that are not the paper's own figures or sections: an analysis the paper leaves to
#: future work, and the figures of the claims (in the report's claims category).
BEYOND_PAPER = "beyond the paper"
CLAIMS = "claims"

#: The activation cache's families (``affine_icl.activations.FAMILIES``, which imports torch
#: and TransformerLens, too slow to load while the DAG is built; tests/test_figures.py checks
#: the two agree). A rule that reads any family also reads ``ln_scale``.
CACHE_FAMILIES = ("resid", "head_result", "pattern", "mlp_out", "ln_scale", "outputs")

#: What some figures need beyond the runs' own results: more than one task family, a sweep.
CONDITIONS = ("tasks", "sweep")


@dataclass(frozen=True)
class Figure:
    """One figure: ``rule`` draws it (its caption is ``workflow/report/<rule>.rst``), ``place``
    is the report's and README's label ("Fig. 07", zero-padded as labels sort as text; "Sec. 4.4"
    for an analysis without a figure; :data:`BEYOND_PAPER`; :data:`CLAIMS`), ``reads`` the
    cache families its rule declares as inputs, ``draws`` the table of the run it draws (a name
    of ``affine_icl.measure.TABLES``, written by its measure rule; the rule's input ``table``).
    ``file`` is the PNG's name where it is not the rule's (``{section}``: one per section of the
    paper); ``only_with`` a condition of :data:`CONDITIONS` without which the workflow does not
    draw it."""

    rule: str
    place: str
    scope: Scope
    shows: str
    reads: tuple[str, ...] = ()
    file: str = ""
    only_with: str = ""
    draws: str = ""

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"{self.rule}: scope {self.scope!r} is none of {SCOPES}")
        if self.only_with and self.only_with not in CONDITIONS:
            raise ValueError(f"{self.rule}: only_with {self.only_with!r} is none of {CONDITIONS}")
        if unknown := set(self.reads) - set(CACHE_FAMILIES):
            raise ValueError(f"{self.rule}: no cache family {sorted(unknown)}")
        numbered = self.place.startswith("Fig. ") and self.place[5:].isdigit()
        section = self.place.startswith("Sec. 4.")
        if not (numbered or section or self.place in (BEYOND_PAPER, CLAIMS)):
            raise ValueError(f"{self.rule}: place {self.place!r} is no 'Fig. NN' or 'Sec. 4.N'")

    @property
    def stem(self) -> str:
        """The PNG's (and its table's) name, without the extension."""
        return self.file or self.rule

    @property
    def caption(self) -> str:
        """The caption's path, relative to the repository root."""
        return f"workflow/report/{self.rule}.rst"

    @property
    def in_paper(self) -> bool:
        """A figure or section of the paper (not an analysis the paper leaves to future work, nor
        a figure of the claims)."""
        return self.place.startswith(("Fig. ", "Sec. "))


def _run(rule: str, place: str, shows: str, *reads: str, draws: str = "") -> Figure:
    return Figure(rule, place, "run", shows, reads, draws=draws)


#: Every figure, in the order of the paper (the workflow's and the README's order).
FIGURES: dict[str, Figure] = {
    f.rule: f
    for f in [
        Figure(
            "fig01_sequence_types",
            "Fig. 01",
            "data",
            "oscillating, decaying and growing example sequences",
        ),
        _run("fig02_loss_curve", "Fig. 02", "training loss and held-out MSE against step"),
        _run(
            "fig03_attention_layer0",
            "Fig. 03",
            "mean attention patterns of layer 0, each head's score against the uniform share",
            "pattern",
        ),
        _run("fig04_attention_layer1", "Fig. 04", "mean attention patterns of layer 1", "pattern"),
        _run(
            "fig05_attention_layer2_alternating",
            "Fig. 05",
            "layer-2 attention on one alternating sequence (c < 0)",
            "pattern",
        ),
        _run(
            "fig06_attention_layer2_non_alternating",
            "Fig. 06",
            "layer-2 attention on one non-alternating sequence (c > 0)",
            "pattern",
        ),
        _run(
            "fig07_head_attribution",
            "Fig. 07",
            "direct attribution per head and position, both variants",
            draws="head_attribution",
        ),
        _run(
            "fig08_layer0_ov",
            "Fig. 08",
            "layer-0 summed OV: per-vector fit of (x_d, (x OV)_d) in three readings (d_model "
            "basis, through W_E and W_U, the attention output read out like the final residual)",
            "resid",
            "head_result",
            draws="ov_regressions",
        ),
        _run(
            "fig09_layer0_ov_matrix",
            "Fig. 09",
            "the summed layer-0 OV matrix (d_model and d_vocab bases)",
        ),
        _run(
            "fig10_layer0_ov_random",
            "Fig. 10",
            "the layer-0 OV fit on random vectors of matched norms, beside the residual's",
            "resid",
        ),
        _run(
            "embedding_span",
            "Sec. 4.4",
            "share of layer-0 OV output outside the span of W_E",
            draws="embedding_span",
        ),
        _run(
            "mean_ablation_layer1",
            "Sec. 4.5",
            "MSE with layer-1 heads mean-ablated",
            draws="mean_ablation",
        ),
        _run(
            "fig11_layer1_ov",
            "Fig. 11",
            "OV of the layer-1 head with the lowest effective rank",
        ),
        _run(
            "fig12_layer2_ov",
            "Fig. 12",
            "OV of the most negative-copying layer-2 head, d_model and W_E/W_U bases",
        ),
        _run(
            "fig13_layer2_qk",
            "Fig. 13",
            "QK of the layer-2 head whose QK stands furthest above its shuffled null",
        ),
        _run(
            "fig14_residual_after_layer0",
            "Fig. 14",
            "the residual after layer 0, decoded, vs the truth",
            "resid",
            draws="residual_after_layer0",
        ),
        _run("fig15_eigenvalue_scores", "Fig. 15", "OV eigenvalue score of every head"),
        _run(
            "qk_intervention",
            "Sec. 4.6",
            "MSE before/after replacing QK by a pseudo-inverse projection",
            draws="qk_intervention",
        ),
        _run(
            "fig16_mlp_attribution",
            "Fig. 16",
            "MLP direct attribution by position",
            draws="mlp_attribution",
        ),
        _run(
            "fig17_residual_shape",
            "Fig. 17",
            "residual before/after layer 0 vs a_n + alpha a_(n-1), alpha measured in Fig 8",
            "resid",
        ),
        _run(
            "fig18_attention_example",
            "Fig. 18",
            "one attention pattern: the strongest previous-token head on one sequence",
            "pattern",
        ),
        _run(
            "baselines",
            BEYOND_PAPER,
            "held-out MSE by position beside the task's least-squares floor, repeating the "
            "last term and linear extrapolation",
        ),
        _run(
            "claims_sensitivity",
            CLAIMS,
            "every verdict with its threshold looser and stricter and under the paper's other "
            "readings",
        ),
        _run(
            "claims_over_training",
            CLAIMS,
            "every claim measured at each weights snapshot and at the end: when each part of "
            "the mechanism forms, which verdicts are still drifting",
        ),
        Figure(
            "seeds_head_attribution",
            "Fig. 07",
            "runs",
            "Figure 7 for every run, heads ordered by direct attribution within each layer",
        ),
        Figure(
            "seeds_layer0_ov",
            "Fig. 08",
            "runs",
            "the layer-0 OV slope and R^2 (Figure 8) of every run",
        ),
        Figure(
            "seeds_eigenvalue_scores",
            "Fig. 15",
            "runs",
            "Figure 15 for every run, heads ordered by eigenvalue score within each layer",
        ),
        Figure(
            "aggregate_claims_sensitivity",
            CLAIMS,
            "runs",
            "the verdict sensitivity grid over all runs: in how many runs each cell holds",
            file="claims_sensitivity",
        ),
        Figure(
            "aggregate_claims_over_training",
            CLAIMS,
            "runs",
            "every run's claims over training: one panel per claim, one line per run",
            file="claims_over_training",
        ),
        Figure(
            "across_tasks",
            BEYOND_PAPER,
            "runs",
            "per task family: MSE against the least-squares floor, the heads that read the "
            "previous vectors, negative copying, the layer-1 mean-ablation ratio",
            only_with="tasks",
        ),
        Figure(
            "sweep_loss_curves",
            BEYOND_PAPER,
            "runs",
            "every run's held-out MSE over training, coloured by its swept setting",
            only_with="sweep",
        ),
        Figure(
            "atlas",
            CLAIMS,
            "runs",
            "every claim's measurement against each swept setting, one figure per section",
            file="atlas_{section}",
            only_with="sweep",
        ),
    ]
}


def figures(scope: Scope, claims: bool = False) -> list[Figure]:
    """The figures of ``scope``: those of the claims (``claims``), or the others."""
    return [f for f in FIGURES.values() if f.scope == scope and (f.place == CLAIMS) == claims]


def paper_place(rule: str) -> str:
    """The report label that puts the figure of ``rule`` in the paper's order (:class:`Figure`
    ``place``)."""
    if rule not in FIGURES:
        raise ValueError(f"{rule}: no such figure; add it to affine_icl/figures/registry.py")
    return FIGURES[rule].place
