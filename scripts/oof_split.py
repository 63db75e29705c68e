"""Write one fold's split of the train photos for out-of-fold low-res maps."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import oof_split_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: oof_split_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
