"""A model's k worst validation predictions: image, truth, probability, error overlay."""

from carvana.analysis import worst_predictions
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: worst_predictions(
        sm.wildcards.model,
        sm.input.per_image,
        sm.input.preds,
        sm.params.data_dir,
        sm.output.png,
        sm.output.csv,
        k=sm.params.k,
    ),
    sm.log[0],
    sm.threads,
)
