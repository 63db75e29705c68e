"""Validation Dice against the binarisation threshold for every scored model."""

from carvana.figure_stages import analysis_threshold_curves_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: analysis_threshold_curves_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
