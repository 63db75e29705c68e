"""benchmarks/photo_changes.py: per-photo Dice of two runs' submissions of known error, the
changes, the counts and the refusal of runs of different photos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from wfutil import REPO, load_benchmark

from carvana import rle

sys.path.insert(0, str(REPO / "benchmarks"))  # the script imports its folder's real_splits
try:
    changes = load_benchmark("photo_changes")
finally:
    sys.path.remove(str(REPO / "benchmarks"))

H, W = 1280, 1918
CARS = ["0123456789ab", "ba9876543210"]


def _box(rows: int) -> np.ndarray:
    """A 100-column car of ``rows`` rows (from row 100)."""
    mask = np.zeros((H, W), np.uint8)
    mask[100:100 + rows, 200:300] = 1
    return mask


def _split(folder: Path, predicted: dict[str, int], copies: bool = False) -> Path:
    """A finished split folder: every photo's truth is 100x100; ``predicted`` its rows."""
    truth = {f"{c}_01.jpg": _box(100) for c in CARS}
    if copies:  # a --test-copies photo under another car id: never scored
        truth["ffffffffffff_01.jpg"] = _box(100)
    (folder / "data" / "truth").mkdir(parents=True)
    pd.DataFrame({"img": list(truth), "rle_mask": [rle.encode(m) for m in truth.values()]}
                 ).to_csv(folder / "data" / "truth" / "test_masks.csv", index=False)
    (folder / "run" / "results").mkdir(parents=True)
    rows = {**{img: 100 for img in truth}, **predicted}
    pd.DataFrame({"img": list(rows), "rle_mask": [rle.encode(_box(r)) for r in rows.values()]}
                 ).to_csv(folder / "run" / "results" / "submission.csv.gz", index=False)
    (folder / "test_cars.json").write_text(json.dumps(CARS))
    return folder


def test_changes_are_per_photo_and_only_the_test_cars_own_photos_count(tmp_path: Path) -> None:
    a, b = (f"{c}_01.jpg" for c in CARS)
    old = changes.split_dice(_split(tmp_path / "old", {a: 90, b: 100}, copies=True))
    new = changes.split_dice(_split(tmp_path / "new", {a: 100, b: 80}, copies=True))
    table = changes.photo_changes(old, new)
    assert list(table.index) == [b, a]  # the largest fall first
    # Dice of a 100-row truth and an r-row prediction of the same columns: 2r / (100 + r)
    assert table.loc[a, "old"] == pytest.approx(180 / 190)
    assert table.loc[a, "change"] == pytest.approx(1 - 180 / 190)
    assert table.loc[b, "change"] == pytest.approx(160 / 180 - 1)
    text = changes.summary(table, worst=1)
    assert "photos up 1, down 1, unchanged 0" in text
    assert f"| {CARS[1]} | 1.00000 | 0.88889 | -0.11111 |" in text


def test_runs_of_different_photos_are_refused(tmp_path: Path) -> None:
    old = pd.Series({f"{CARS[0]}_01.jpg": 0.99})
    new = pd.Series({f"{CARS[1]}_01.jpg": 0.99})
    with pytest.raises(SystemExit, match="different photos"):
        changes.photo_changes(old, new)
