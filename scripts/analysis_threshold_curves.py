"""Validation Dice against the binarisation threshold for every scored model."""

from carvana.analysis import threshold_curves
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: threshold_curves(
        dict(zip(sm.params.models, sm.input.curves, strict=True)), sm.output.png, sm.output.csv
    ),
    sm.log[0],
    sm.threads,
)
