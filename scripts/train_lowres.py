"""Train one low-resolution model of the ladder."""

from carvana.model_stages import train_lowres_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: train_lowres_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
