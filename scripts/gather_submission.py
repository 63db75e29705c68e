"""Gather the encoded shards into results/submission.csv.gz in sample_submission order."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import gather_submission_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: gather_submission_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
