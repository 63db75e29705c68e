"""Bounding boxes and tile bands from a low-res model's predictions (train, or a test shard)."""

from carvana.snake import run_logged
from carvana.stages import boxes_stage, fold_ids

sm = snakemake  # noqa: F821  (injected by Snakemake)
ids = (lambda: list(sm.params.ids)) if hasattr(sm.params, "ids") else (
    lambda: fold_ids(sm.input.split))
run_logged(
    lambda: boxes_stage(sm.input.preds, ids(), sm.input.ingest, dict(sm.params.tiles),
                        float(sm.params.threshold), int(sm.params.margin), sm.output.boxes),
    sm.log[0],
)
