"""The submission source's k worst test photos against kept truth: image, truth, probability,
error overlay."""

from carvana.figure_stages import analysis_worst_test_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: analysis_worst_test_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
