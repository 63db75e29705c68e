"""results/metrics/summary.csv: every model's Dice, size, training and prediction time."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import summary_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: summary_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
