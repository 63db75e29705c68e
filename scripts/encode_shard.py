"""Threshold and run-length encode one test shard."""

from carvana.io import read_json
from carvana.snake import run_logged
from carvana.submission import encode_shard

sm = snakemake  # noqa: F821  (injected by Snakemake)


def main() -> None:
    info = read_json(sm.input.ingest)
    threshold = sm.params.threshold
    if threshold == "best":
        threshold = read_json(sm.input.threshold)["threshold"]
    encode_shard(sm.input.preds, ids=list(sm.params.ids), size=(info["width"], info["height"]),
                 threshold=float(threshold), out_csv=sm.output.csv)


run_logged(main, sm.log[0])
