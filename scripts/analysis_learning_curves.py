"""Learning curves of every trained model in one grid, and a per-model summary table."""

from carvana.analysis import learning_curves
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: learning_curves(
        dict(zip(sm.params.models, sm.input.histories, strict=True)),
        sm.output.png,
        sm.output.csv,
    ),
    sm.log[0],
    sm.threads,
)
