"""Gather every shard's cut-outs into results/cutouts/ and draw the contact sheet."""

from carvana.cutouts import collect_cutouts
from carvana.snake import run_logged

sm = snakemake  # noqa: F821  (injected by Snakemake)
kwargs = {
    "shard_dirs": list(sm.input.shards),
    "stems": list(sm.params.stems),
    "out_dir": sm.params.out_dir,
    "contact_sheet_jpg": sm.params.sheet,
    "summary_csv": sm.params.summary,
}
run_logged(lambda: collect_cutouts(**kwargs), sm.log[0], sm.threads)
