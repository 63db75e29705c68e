"""Gather the encoded shards into results/submission.csv.gz in sample_submission order.

The gzip is byte-identical for equal rows (no file name, mtime 0 in its header).
"""

from carvana.snake import run_logged
from carvana.submission import gather

sm = snakemake  # noqa: F821  (injected by Snakemake)
run_logged(lambda: gather(list(sm.input.shards), sample_submission=sm.params.sample,
                          out_gz=sm.output.submission), sm.log[0])
