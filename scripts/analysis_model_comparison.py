"""Model comparison: validation Dice of every scored model, as a bar chart and a table."""

from carvana.analysis import model_comparison
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: model_comparison(sm.input.metrics, sm.input.train, sm.output.png, sm.output.csv),
    sm.log[0],
    sm.threads,
)
