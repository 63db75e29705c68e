"""How far off a low-res model's map is on the cars it trained on and on unseen cars.

A depth model trains on its low-res model's maps of the train photos (cars that model saw) and
predicts from its maps of the test photos (cars it never saw). This counts, on finished
``benchmarks/real_splits.py`` splits, each map's wrong pixels at full size by distance to the
true edge, train photos (every ``--every``-th) against the test cars' own photos:

    python benchmarks/prior_gap.py --split A=/work/runs/baseA/A --split B=/work/runs/baseB/B \\
        --model effl0_320 [--oof train_oof_k2]

Numbers only (docs/real-photos.md, "Eleventh pass").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from edge_errors import SHAPE, stored_maps  # this folder's: run as a script, it is on sys.path

from carvana import rle
from carvana.analysis.worst import edge_distance
from carvana.data import mask_path
from carvana.io import full_size_prob, read_mask

BANDS = {"3-8 px": (3, 8), "8-16 px": (8, 16), "beyond 16 px": (16, np.inf)}


def photo_row(true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """One photo's Dice and wrong pixels by band of distance to the true edge."""
    pred = prob >= 0.5
    dist = edge_distance(true)[pred != true]
    row = {"dice": 2 * float((pred & true).sum()) / max(int(pred.sum() + true.sum()), 1)}
    row.update({name: int(((dist > lo) & (dist <= hi)).sum()) for name, (lo, hi) in BANDS.items()})
    return row


def count_split(folder: Path, model: str, every: int, oof: str | None = None) -> pd.DataFrame:
    """A row per photo: ``seen`` (a train photo), ``out of fold`` (the same photo's map in
    folder ``oof``, e.g. train_oof_k2, when given) or ``unseen`` (a test car's photo)."""
    predict = folder / "run" / "results" / "predict" / model
    kaggle = folder / "data" / "kaggle"
    train_maps = {"seen": "train_all", **({"out of fold": oof} if oof else {})}
    rows = []
    for image_id in sorted(p.stem for p in (kaggle / "train").glob("*.jpg"))[::every]:
        true = read_mask(mask_path(kaggle, image_id)).astype(bool)
        for cars, sub in train_maps.items():
            prob = full_size_prob(predict / sub, image_id, (SHAPE[1], SHAPE[0]))
            rows.append({"cars": cars, **photo_row(true, prob)})
    cars = json.loads((folder / "test_cars.json").read_text())
    truth = pd.read_csv(folder / "data" / "truth" / "test_masks.csv")
    maps = stored_maps(predict / "test")  # none stored is an error naming the folder
    for img, code in zip(truth["img"], truth["rle_mask"], strict=True):
        image_id = img.removesuffix(".jpg")
        if image_id[:12] not in cars:
            continue  # a --test-copies copy
        prob = full_size_prob(maps[image_id], image_id, (SHAPE[1], SHAPE[0]))
        rows.append({"cars": "unseen", **photo_row(rle.decode(code, SHAPE).astype(bool), prob)})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--model", default="effl0_320", help="a low-res model of the runs")
    parser.add_argument("--every", type=int, default=3, help="every Nth train photo")
    parser.add_argument("--oof", help="also the out-of-fold maps in this folder of the model's "
                        "predictions (e.g. train_oof_k2: depth_folds)")
    args = parser.parse_args()
    tables = []
    for spec in args.split:
        name, _, folder = spec.partition("=")
        tables.append(count_split(Path(folder), args.model, args.every, args.oof).assign(split=name))
    means = pd.concat(tables).groupby(["split", "cars"]).mean(numeric_only=True)
    print(means.round({"dice": 4, **dict.fromkeys(BANDS, 0)}).to_markdown())


if __name__ == "__main__":
    main()
