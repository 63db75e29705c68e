"""Train a full-resolution model on bounding-box tiles (optionally with a depth channel)."""

from carvana.model_stages import train_tiles_stage
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: train_tiles_stage(
        sm.wildcards.model, sm.params.spec, sm.params.data_dir, sm.input.split, sm.input.ingest,
        sm.input.boxes, dict(sm.params.tiles), sm.input.get("depth"), sm.input.get("init"),
        sm.params.seed, sm.params.device, sm.params.cpu_fallback, sm.output.weights,
        sm.output.history, sm.output.curve, sm.output.summary,
    ),
    sm.log[0], sm.threads,
)
