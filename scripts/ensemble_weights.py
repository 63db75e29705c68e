"""The ensemble's weights chosen on the validation images."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import ensemble_weights_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: ensemble_weights_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
