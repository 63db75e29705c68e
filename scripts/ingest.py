"""Validate the data folder; write the train table and a summary."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import ingest_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: ingest_stage(**stage_kwargs(sm), threads=sm.threads), sm.log[0], sm.threads)
