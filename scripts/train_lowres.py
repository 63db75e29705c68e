"""Train one low-resolution U-Net of the ladder."""

from carvana.model_stages import train_lowres_stage
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: train_lowres_stage(
        sm.wildcards.model, sm.params.spec, sm.params.data_dir, sm.input.split, sm.params.seed,
        sm.params.device, sm.params.cpu_fallback, sm.output.weights, sm.output.history,
        sm.output.curve, sm.output.summary,
    ),
    sm.log[0], sm.threads,
)
