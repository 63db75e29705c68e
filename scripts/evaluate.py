"""Score a model's validation predictions at model and full resolution."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import evaluate_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: evaluate_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
