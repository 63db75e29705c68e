"""One test shard's pseudo-labels from the ensemble of the round before."""

from carvana.snake import run_logged, stage_kwargs
from carvana.stages import pseudo_labels_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: pseudo_labels_stage(**stage_kwargs(sm)), sm.log[0], sm.threads)
