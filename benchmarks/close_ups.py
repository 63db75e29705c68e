"""Close-ups through a finished run's chain: each unseen test photo cropped to its car's rows
(± ``--pad`` px, full width), as a person's photo may frame a car, then squashed to the data
geometry by the Segmenter, where the car is taller than the tile band. Dice against the
cropped true mask, and the photos the band cut (the Segmenter's warning).

    python benchmarks/close_ups.py /work/runs/s21/rA/A /work/runs/s21/rB/B --pad 24

Each folder is one ``benchmarks/real_splits.py`` split (``run/``, ``data/``, ``test_cars.json``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from inference_ceiling import unseen_truths  # this folder's: run as a script, it is on sys.path

from carvana.metrics import dice


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.cut = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.cut += "taller than the" in record.getMessage()


def close_up_scores(run: Path, pad: int) -> tuple[np.ndarray, int]:
    """Each test photo's close-up Dice, and how many close-ups the tile band cut."""
    from carvana.photos import read_photo
    from carvana.segmenter import Segmenter

    seg = Segmenter.from_results(run / "run" / "results")
    counter = _Count()
    logging.getLogger("carvana.segmenter").addHandler(counter)
    scores, cut = [], 0
    try:
        for image_id, true in sorted(unseen_truths(run).items()):
            rows = np.flatnonzero(true.any(axis=1))
            a, b = max(rows[0] - pad, 0), min(rows[-1] + 1 + pad, true.shape[0])
            photo = read_photo(run / "data" / "kaggle" / "test" / f"{image_id}.jpg")
            before = counter.cut
            scores.append(dice(seg.mask(np.ascontiguousarray(photo[a:b])) > 0, true[a:b]))
            cut += counter.cut > before
    finally:
        logging.getLogger("carvana.segmenter").removeHandler(counter)
    return np.array(scores), cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("splits", nargs="+", type=Path, help="real_splits.py split folders")
    parser.add_argument("--pad", type=int, default=24, help="rows kept above and below the car")
    args = parser.parse_args()
    for run in args.splits:
        scores, cut = close_up_scores(run, args.pad)
        print(f"{run}: close-ups {scores.mean():.5f} (min {scores.min():.5f}, below 0.99: "
              f"{int((scores < 0.99).sum())} of {len(scores)}; the band cut {cut})")


if __name__ == "__main__":
    main()
