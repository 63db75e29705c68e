"""Decode the submission back, gate on empty masks, score it against kept truth."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import check_submission_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: check_submission_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
