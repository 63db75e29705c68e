"""Model comparison: validation Dice of every scored model, as a bar chart and a table."""

from carvana.figure_stages import analysis_model_comparison_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: analysis_model_comparison_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
