"""Gather every shard's cut-outs into results/cutouts/ and draw the contact sheet."""

from carvana.figure_stages import cutouts_collect_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: cutouts_collect_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
