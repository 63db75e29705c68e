"""Generate the synthetic Carvana data set in the Kaggle layout."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import synthetic_data_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: synthetic_data_stage(**stage_kwargs(sm), threads=sm.threads), sm.log[0],
           sm.threads)
