"""Predict train images (all of them) or one test shard with a low-resolution model."""

from carvana.model_stages import predict_lowres_stage
from carvana.snake import run_logged
from carvana.stages import fold_ids

sm = snakemake  # noqa: F821  (injected by Snakemake)
if hasattr(sm.wildcards, "shard"):
    split, ids = "test", lambda: list(sm.params.ids)
else:
    split, ids = "train", lambda: fold_ids(sm.input.split)
run_logged(
    lambda: predict_lowres_stage(
        sm.input.weights, sm.params.data_dir, split, ids(), sm.output.preds,
        sm.params.batch_size, sm.params.tta_hflip, sm.params.device, sm.params.cpu_fallback,
        sm.output.timing,
    ),
    sm.log[0], sm.threads,
)
