"""Predict the validation images or one test shard tile by tile, stitched to full size."""

from carvana.model_stages import predict_tiles_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: predict_tiles_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
