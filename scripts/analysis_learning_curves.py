"""Learning curves of every trained model in one grid, and a summary table."""

from carvana.figure_stages import analysis_learning_curves_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: analysis_learning_curves_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
