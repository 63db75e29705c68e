"""Predict every train image or one test shard with a low-res model."""

from carvana.model_stages import predict_lowres_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: predict_lowres_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
