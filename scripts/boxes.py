"""Bounding boxes and tile bands from a low-res model's predictions (train, or a test shard)."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import boxes_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: boxes_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
