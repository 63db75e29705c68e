"""Decode the submission back, count rows and empty masks, score it against kept truth."""

from carvana.io import read_json
from carvana.snake import run_logged
from carvana.submission import check_submission

sm = snakemake  # noqa: F821  (injected by Snakemake)


def main() -> None:
    info = read_json(sm.input.ingest)
    truth = sm.input.truth if sm.input.get("truth") else None
    check_submission(sm.input.submission, sm.params.sample, (info["width"], info["height"]),
                     truth, sm.output.check)


run_logged(main, sm.log[0])
