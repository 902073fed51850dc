"""Every quantitative statement of the paper, measured on a run, with a verdict.

A claim is one object (:class:`~affine_icl.claims.claim.Claim`): where the paper makes it and
what it says and reports, how it is measured from the run's tables, the value it has at
chance, and the other readings the paper's words allow. The claims are registered one module
per paper section (``section4_1`` ... ``section4_8``, ``future_work``), in the paper's order;
:mod:`~affine_icl.claims.registry` puts them together and checks config.yaml's ``claims:``
against them. What a user tunes is only the criterion a claim is judged by (``claims:``), one
of

- ``{at_least: x, differs_down_to: y}``: reproduced if measured >= x; "differs in degree"
  if measured >= y; else not reproduced.
- ``{at_most: x, differs_up_to: y}``: the mirror image.
- ``{within: [lo, hi], differs_within: [lo2, hi2]}``: reproduced inside [lo, hi], differs in
  degree inside the wider interval, else not reproduced.

Modules: :mod:`~affine_icl.claims.verdicts` (criteria and verdicts), :mod:`.claim` (the
object), :mod:`.read` (reading the run's tables), the section modules, :mod:`.registry` and
:mod:`.table` (one run's claims table). How a verdict depends on its definition is
:mod:`affine_icl.sensitivity` and :mod:`affine_icl.margins`; the Markdown and HTML pages are
:mod:`affine_icl.render`.

Adding a claim: one entry in its section's module (and, where it needs a table no rule writes
yet, that table in the measurement), and its criterion in config.yaml.
"""
