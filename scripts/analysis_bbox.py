"""Bounding boxes and the tile band: box sizes, how often and how much the band cuts masks."""

from carvana.figure_stages import analysis_bbox_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: analysis_bbox_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
