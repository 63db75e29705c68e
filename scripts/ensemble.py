"""Weighted average of the ensemble members' probabilities (validation, or one test shard)."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import ensemble_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: ensemble_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
