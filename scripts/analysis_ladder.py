"""The resolution ladder: Dice of the low-res models against input size, Kaggle's LB beside."""

from carvana.figure_stages import analysis_ladder_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: analysis_ladder_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
