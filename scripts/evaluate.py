"""Score a model's validation predictions at model and full resolution."""

from carvana.snake import run_logged
from carvana.stages import evaluate_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: evaluate_stage(
        sm.wildcards.model, sm.input.preds, sm.params.data_dir, sm.input.split, sm.input.ingest,
        sm.input.get("train_summary"), sm.output.metrics, sm.output.per_image,
        sm.output.thresholds,
    ),
    sm.log[0], sm.threads,
)
