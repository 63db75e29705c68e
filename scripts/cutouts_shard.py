"""Cut out one shard of a person's photos with the trained chain (masks and RGBA PNGs)."""

from carvana.model_stages import cutouts_shard_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: cutouts_shard_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
