"""The test photos' Dice against kept truth (config ``truth:``): per photo and per car, for each
ensemble member and the ensemble, at the submission's threshold.

The submission check gives one mean; these tables say which car and which member it comes
from (issue 15: "each member's stored test probabilities, scored alone on the same unseen
cars"). Light: no torch, no matplotlib.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from carvana.ids import car_of
from carvana.io import DataError, full_size_prob, read_json, write_frame
from carvana.metrics import dice
from carvana.submission import load_truth

log = logging.getLogger(__name__)

PathLike = str | Path
#: The per-car table's last row: every photo together (its min is the worst photo).
ALL_CARS = "all"


def submission_threshold(setting: float | str, threshold_choice: PathLike | None) -> float:
    """The submission's threshold: the setting, or (``best``) the threshold analysis's choice."""
    if setting != "best":
        return float(setting)
    if not threshold_choice:
        raise ValueError("threshold 'best' needs results/metrics/threshold.json as an input")
    return float(read_json(threshold_choice)["threshold"])


def truth_by_id(truth: PathLike, ingest: PathLike) -> Callable[[str], np.ndarray]:
    """Image id -> its true {0,1} mask, from a truth CSV or folder (:func:`load_truth`) at the
    data's size (read from ingest.json)."""
    info = read_json(ingest)
    by_img = load_truth(truth, (int(info["height"]), int(info["width"])))
    return lambda image_id: by_img(f"{image_id}.jpg")


def dice_column(source: str) -> str:
    """The per-photo table's column of a source's Dice."""
    return f"dice_{source}"


def photo_scores(
    preds: Mapping[str, Sequence[PathLike]],
    shards: Mapping[str, Sequence[str]],
    truth: Callable[[str], np.ndarray],
    threshold: float,
) -> pd.DataFrame:
    """Dice of every test photo for every source: ``id, car, dice_<source>...`` in shard order.

    ``preds`` maps a source to its shard folders (one per shard, in ``shards`` order), ``shards``
    a shard to its ids. Each probability map is resized to the mask's size (bilinear, as the
    submission's encoding does) and thresholded at ``threshold``.
    """
    names = list(shards)
    for source, dirs in preds.items():
        if len(dirs) != len(names):
            raise ValueError(f"{source}: {len(dirs)} prediction folders for {len(names)} shards")
    rows = []
    for index, shard in enumerate(tqdm(names, desc="score test shards", mininterval=5)):
        for image_id in shards[shard]:
            mask = truth(image_id)
            size = (mask.shape[1], mask.shape[0])
            row: dict[str, str | float] = {"id": image_id, "car": car_of(image_id)}
            for source, dirs in preds.items():
                pred = full_size_prob(dirs[index], image_id, size) >= threshold
                row[dice_column(source)] = dice(pred, mask)
            rows.append(row)
    if not rows:
        raise DataError("no test photos to score")
    return pd.DataFrame(rows, columns=["id", "car", *map(dice_column, preds)])


def per_car(per_photo: pd.DataFrame, sources: Sequence[str]) -> pd.DataFrame:
    """``car, n, mean_<source>, min_<source>...`` per car (sorted), then a row ``all`` over
    every photo (mean of the photos, the worst photo)."""
    columns = {"n": ("id", "size")}
    for source in sources:
        columns[f"mean_{source}"] = (dice_column(source), "mean")
        columns[f"min_{source}"] = (dice_column(source), "min")
    cars = per_photo.groupby("car", sort=True).agg(**columns).reset_index()
    every = per_photo.assign(car=ALL_CARS).groupby("car").agg(**columns).reset_index()
    return pd.concat([cars, every], ignore_index=True)


def score_test_photos(
    preds: Mapping[str, Sequence[PathLike]],
    shards: Mapping[str, Sequence[str]],
    truth: Callable[[str], np.ndarray],
    threshold: float,
    per_image_csv: PathLike,
    per_car_csv: PathLike,
) -> pd.DataFrame:
    """Score every source's test photos; write the per-photo and the per-car table (returned)."""
    photos = photo_scores(preds, shards, truth, threshold)
    cars = per_car(photos, list(preds))
    write_frame(photos, per_image_csv, float_format="%.6f")
    write_frame(cars, per_car_csv, float_format="%.6f")
    overall = cars.iloc[-1]
    log.info("test Dice at threshold %g over %d photos, %d cars: %s", threshold, len(photos),
             len(cars) - 1, ", ".join(f"{s} {overall[f'mean_{s}']:.4f} (worst photo "
                                      f"{overall[f'min_{s}']:.4f})" for s in preds))
    return cars

