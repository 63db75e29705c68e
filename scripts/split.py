"""Split the train images into train and validation folds, grouped by car."""

from carvana.snake import run_logged
from carvana.stages import split_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: split_stage(sm.input.train, sm.output.split, sm.params.val_fraction, sm.params.seed),
    sm.log[0],
)
