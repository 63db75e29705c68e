"""Train a full-resolution model on bounding-box tiles (optionally with a depth channel)."""

from carvana.model_stages import train_tiles_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: train_tiles_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
