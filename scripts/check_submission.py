"""Decode the submission back, count rows and empty masks, score it against kept truth.

Fails (and writes no JSON) when more than submission.max_empty_fraction of the masks are empty.
"""

from carvana.io import read_json
from carvana.snake import run_logged
from carvana.submission import check_submission

sm = snakemake  # noqa: F821  (injected by Snakemake)


def main() -> None:
    info = read_json(sm.input.ingest)
    truth = sm.input.truth if sm.input.get("truth") else None
    check_submission(sm.input.submission, sm.params.sample, shape=(info["height"], info["width"]),
                     truth=truth, out_json=sm.output.check,
                     max_empty_fraction=float(sm.params.max_empty_fraction))


run_logged(main, sm.log[0])
