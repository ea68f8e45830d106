"""Reporting, pure (numpy, pyarrow, matplotlib's Agg canvas, yaml; never torch, transformers or huggingface_hub):

    analysis.py         ``curricula analyze``: block fates, ``report.md``, the analysis plots
    card.py             the model card (README.md) of a run folder, rendered from the folder and the Trainer's facts
    files.py            which files of a run folder are published, and the error for a folder that cannot be
    plots.py            the Agg figure and atomic PNG write the plots share
    training_plots.py   domain weights per step / per round, continual stages' validation loss

Nothing is imported here: ``curricula.report.card`` etc. are imported by name.
"""
