"""results/chain.json: the trained chain as the segmenter, the CLI and the export run it."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import chain_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: chain_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
