"""Command line: ``carvana-synthetic --out DIR --truth DIR [options]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carvana.synthetic.config import SyntheticConfig
from carvana.synthetic.dataset import generate

DESCRIPTION = "A deterministic synthetic Carvana data set in the exact Kaggle layout."


def _parser() -> argparse.ArgumentParser:
    """The argument parser, defaults from :class:`SyntheticConfig`."""
    d = SyntheticConfig()
    ap = argparse.ArgumentParser(prog="carvana-synthetic", description=DESCRIPTION)
    ap.add_argument("--out", type=Path, required=True, help="folder for the Kaggle layout")
    ap.add_argument("--truth", type=Path, required=True, help="folder for test_masks.csv")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--train-cars", type=int, default=d.train_cars)
    ap.add_argument("--test-cars", type=int, default=d.test_cars)
    ap.add_argument("--width", type=int, default=d.width)
    ap.add_argument("--height", type=int, default=d.height)
    ap.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Command line: ``carvana-synthetic --out DIR --truth DIR [options]``; 2 on bad input."""
    a = _parser().parse_args(argv)
    cfg = SyntheticConfig(
        seed=a.seed,
        train_cars=a.train_cars,
        test_cars=a.test_cars,
        width=a.width,
        height=a.height,
        jpeg_quality=a.jpeg_quality,
    )
    try:
        generate(a.out, a.truth, cfg, threads=a.threads, progress=not a.quiet)
    except ValueError as err:
        print(f"carvana-synthetic: {err}", file=sys.stderr)
        return 2
    return 0
