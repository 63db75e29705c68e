"""``carvana-check-submission``: check a Carvana submission file without the workflow.

Usage::

    carvana-check-submission SUB.csv.gz --sample sample_submission.csv \
        [--truth DIR_OR_CSV] [--shape H,W] [--max-empty-fraction F]

Checks the header, the ids (the sample's, each once, in its order) and every RLE (syntax and
bounds for the shape, default 1280,1918). With ``--truth`` (a folder of ``<id>_mask.gif`` /
``_mask.png``, or an ``img,rle_mask`` CSV like ``train_masks.csv``) it prints the mean Dice.
Exit 0 prints a one-line summary; any problem exits 1 naming the first one (2 for bad usage).
The checks are those of the workflow's ``check_submission`` rule (:mod:`carvana.submission`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carvana.io import DataError
from carvana.rle import RLEError
from carvana.submission import (
    DEFAULT_SHAPE,
    check_empty_fraction,
    summary_line,
    validate_submission,
)


def parse_shape(text: str) -> tuple[int, int]:
    """``'H,W'`` into (height, width); argparse reports a malformed value."""
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W (e.g. 1280,1918), got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"height and width must be positive, got {text!r}")
    return height, width


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="carvana-check-submission",
        description="Check a Carvana submission (header, ids, order, RLE) and score it if truth "
                    "is given. Exits non-zero naming the first problem.",
    )
    ap.add_argument("submission", type=Path, help="the submission, .csv.gz or .csv")
    ap.add_argument("--sample", type=Path, required=True,
                    help="Kaggle's sample_submission.csv: the ids and their order")
    ap.add_argument("--truth", type=Path, default=None,
                    help="true masks: a folder of <id>_mask.gif/.png, or an img,rle_mask CSV")
    ap.add_argument("--shape", type=parse_shape, default=DEFAULT_SHAPE,
                    help="mask height,width (default 1280,1918)")
    ap.add_argument("--max-empty-fraction", type=float, default=None,
                    help="also fail when more than this share of the masks are empty")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the check; print the summary (exit 0) or the first problem (exit 1)."""
    args = build_parser().parse_args(argv)
    try:
        summary = validate_submission(args.submission, args.sample, shape=args.shape,
                                      truth=args.truth, progress=sys.stderr.isatty())
        if args.max_empty_fraction is not None:
            check_empty_fraction(summary, args.max_empty_fraction, args.submission)
    except (DataError, RLEError) as err:
        print(f"carvana-check-submission: FAILED: {err}", file=sys.stderr)
        return 1
    print(f"{args.submission}: OK: {summary_line(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
