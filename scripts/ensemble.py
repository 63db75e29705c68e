"""Weighted average of the ensemble members' probabilities (validation, or one test shard)."""

from carvana.snake import run_logged
from carvana.stages import ensemble_stage, fold_ids

sm = snakemake  # noqa: F821  (injected by Snakemake)
ids = (lambda: list(sm.params.ids)) if hasattr(sm.params, "ids") else (
    lambda: fold_ids(sm.input.split, "val"))
run_logged(
    lambda: ensemble_stage(dict(sm.params.members), list(sm.input.preds), ids(),
                           sm.input.ingest, sm.output.preds),
    sm.log[0],
)
