"""Generate the synthetic Carvana data set in the Kaggle layout."""

from pathlib import Path

from carvana.snake import run_logged
from carvana.synthetic import SyntheticConfig, generate

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: generate(Path(sm.output.data), Path(sm.output.truth).parent,
                     SyntheticConfig(**sm.params.synthetic), threads=sm.threads),
    sm.log[0], sm.threads,
)
