"""results/export/<source>/: the chain's graphs, weights and manifest, runnable anywhere."""

from carvana.model_stages import export_bundle_stage
from carvana.snake import run_logged, stage_kwargs

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: export_bundle_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
