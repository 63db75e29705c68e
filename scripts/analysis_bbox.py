"""Bounding boxes and the tile band: box sizes, how often and how much the band cuts masks."""

from carvana.analysis import bbox_analysis
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: bbox_analysis(sm.input.table, sm.output.png, sm.output.csv), sm.log[0], sm.threads
)
