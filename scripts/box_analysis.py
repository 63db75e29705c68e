"""How the tile bands cut the true masks of the validation images."""

from carvana.snake import run_logged
from carvana.stages import box_analysis_stage

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: box_analysis_stage(sm.input.boxes, sm.params.data_dir, sm.input.split,
                               sm.output.analysis),
    sm.log[0],
)
