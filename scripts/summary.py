"""results/metrics/summary.csv: every model's Dice, size, training and prediction time."""

from carvana.snake import run_logged
from carvana.stages import summary_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: summary_stage(
        dict(zip(sm.params.scored, sm.input.metrics, strict=True)),
        dict(zip(sm.params.trained, sm.input.train, strict=True)),
        dict(zip(sm.params.trained, sm.input.timing, strict=True)),
        sm.output.summary,
    ),
    sm.log[0],
)
