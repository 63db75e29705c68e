"""Validation Dice against threshold for every model; the submission's threshold."""

from carvana.snake import run_logged
from carvana.stages import threshold_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: threshold_stage(
        dict(zip(sm.params.models, sm.input.curves, strict=True)), sm.params.setting,
        sm.params.source, sm.output.choice, sm.output.table, sm.output.plot,
    ),
    sm.log[0],
)
