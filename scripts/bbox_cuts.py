"""How the tile bands cut the true masks of the validation images."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import bbox_cuts_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: bbox_cuts_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
