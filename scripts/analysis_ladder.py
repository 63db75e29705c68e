"""The resolution ladder: Dice of the low-res U-Nets against input size, Kaggle's LB beside."""

from carvana.analysis import ladder_figure
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: ladder_figure(sm.input.metrics, sm.input.train, sm.output.png, sm.output.csv),
    sm.log[0],
    sm.threads,
)
