"""benchmarks/edge_errors.py on a built split folder: known wrong pixels by band and region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from wfutil import load_benchmark

from carvana import rle
from carvana.io import write_prob

edge_errors = load_benchmark("edge_errors")

H, W = edge_errors.SHAPE
CAR = "0123456789ab"


def _split(tmp_path: Path) -> Path:
    """One test photo: a 400-row car; the stored map misses its top row, and paints 3 rows of
    floor shadow under it 10 px below (another car's photo, a copy, is not counted)."""
    folder = tmp_path / "A"
    truth = np.zeros((H, W), np.uint8)
    truth[400:800, 500:1500] = 1
    pred = truth.astype(np.float32)
    pred[400, 500:1500] = 0.0  # missed: the top row, on the true edge
    pred[810:813, 600:700] = 1.0  # extra: a blob of shadow 10-12 px below the car
    shard = folder / "run" / "results" / "predict" / "m" / "test" / "0"
    shard.mkdir(parents=True)
    for car in (CAR, "ba9876543210"):
        write_prob(shard / f"{car}_01.png", pred)
    (folder / "data" / "truth").mkdir(parents=True)
    code = rle.encode(truth)
    pd.DataFrame({"img": [f"{CAR}_01.jpg", "ba9876543210_01.jpg"], "rle_mask": [code, code]}
                 ).to_csv(folder / "data" / "truth" / "test_masks.csv", index=False)
    (folder / "test_cars.json").write_text(json.dumps([CAR]))
    return folder


def test_counts_by_band_and_region_are_the_known_wrong_pixels(tmp_path: Path) -> None:
    table = edge_errors.count_split(_split(tmp_path), ["m"], 0.5).assign(split="A")
    assert set(table["id"]) == {f"{CAR}_01"}  # only the test cars' own photos
    by_kind, by_region = edge_errors.summaries(table)
    assert by_kind.loc[("A", "m", "missed")].tolist() == [1000, 0, 0]
    assert by_kind.loc[("A", "m", "extra")].tolist() == [0, 0, 300]
    assert by_region.loc[("A", "m", "lower part")].tolist() == [0, 0, 300, 300]
    assert by_region.loc[("A", "m", "above")].tolist() == [1000, 0, 0, 1000]


def test_a_model_with_no_stored_maps_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    folder = _split(tmp_path)
    with pytest.raises(SystemExit, match="predict/other/test: no stored test probabilities"):
        edge_errors.count_split(folder, ["other"], 0.5)
