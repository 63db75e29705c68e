"""The submission's threshold (fixed, or the best on validation) and every model's best."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import thresholds_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: thresholds_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
