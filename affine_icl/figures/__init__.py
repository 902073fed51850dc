"""The figures: for each, the table behind it (a pure function of data) and the plot drawn from
that table, in one module per part of the paper.

Every figure is a pair: ``<name>_table(...) -> DataFrame`` computes (where the script does not
take the table from an analysis), ``plot_<name>(table)`` draws. Scripts write both the PNG and
the table, so a reader can check any plotted number. Modules, in the paper's order:

* :mod:`.style`: the shared look (Agg, seaborn's theme), :func:`~.style.save_figure` and the
  drawing helpers the others share.
* :mod:`.data`: Figures 1 and 2 (the data, the loss curve) and the in-context baselines.
* :mod:`.attention`: section 4.2, attention patterns (Figures 3-6, 18).
* :mod:`.attribution`: section 4.3, direct attribution (Figure 7; the MLPs' Figure 16).
* :mod:`.ov`: sections 4.4-4.5, the OV circuits of layers 0 and 1 (Figures 8-11) and the matrix
  heatmaps Figures 12-13 share, the embedding span, the layer-1 mean ablation.
* :mod:`.layer2`: section 4.6, negative copying (Figure 15) and the QK intervention.
* :mod:`.residual`: sections 4.7-4.8, the residual read out as a sequence (Figures 14, 17).
* :mod:`.claims`: the claims' verdict sensitivity and the claims over training.
* :mod:`.across_runs`: the per-run figures side by side for every run, the task families, a
  sweep's loss curves and mechanism atlas.
* :mod:`.registry`: which figures exist, for the workflow, the tests and the README (standard
  library only; no figure module imports it).

This ``__init__`` imports nothing: each caller imports the module it needs, and the Snakefile
loads the registry without matplotlib.
"""
