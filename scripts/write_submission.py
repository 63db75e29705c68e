"""Gather the encoded shards into results/submission.csv.gz in sample_submission order."""

from carvana.snake import run_logged
from carvana.submission import gather

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: gather(list(sm.input.shards), sm.params.sample, sm.output.submission), sm.log[0])
