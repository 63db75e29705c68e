"""Score every ensemble member's and the ensemble's test photos against kept truth."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import score_test_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: score_test_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
