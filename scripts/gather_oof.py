"""Gather the fold copies' maps into one folder of out-of-fold maps of every train photo."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import gather_oof_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: gather_oof_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
