"""Predict the validation images or one test shard tile by tile, stitched to full size."""

from carvana.model_stages import predict_tiles_stage
from carvana.snake import run_logged
from carvana.stages import fold_ids

sm = snakemake  # noqa: F821  (injected by Snakemake)
if hasattr(sm.wildcards, "shard"):
    split, ids = "test", lambda: list(sm.params.ids)
else:
    split, ids = "train", lambda: fold_ids(sm.input.split, "val")
run_logged(
    lambda: predict_tiles_stage(
        sm.input.weights, sm.params.data_dir, split, ids(), [sm.input.boxes], sm.input.ingest,
        dict(sm.params.tiles), sm.input.get("depth"), sm.output.preds, sm.params.batch_size,
        sm.params.tta_hflip, sm.params.device, sm.params.cpu_fallback, sm.output.timing,
    ),
    sm.log[0], sm.threads,
)
