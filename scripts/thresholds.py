"""The submission's threshold (fixed, or the best on validation) and every model's best."""

from carvana.snake import run_logged
from carvana.stages import threshold_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: threshold_stage(
        dict(zip(sm.params.models, sm.input.curves, strict=True)), sm.params.setting,
        sm.params.source, sm.output.choice,
    ),
    sm.log[0],
)
