"""Threshold and run-length encode one test shard."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import encode_shard_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: encode_shard_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
