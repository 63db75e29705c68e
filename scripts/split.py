"""Split the train images into train and validation folds, grouped by car."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import split_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: split_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
