"""Validate the data folder; write the train table and a summary."""

from carvana.ingest import ingest
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(
    lambda: ingest(sm.params.data_dir, sm.output.train, sm.output.summary, threads=sm.threads),
    sm.log[0], sm.threads,
)
