"""Train/validation split grouped by car, so the 16 views of one car never straddle it."""

from __future__ import annotations

import numpy as np
import pandas as pd


def split_by_car(table: pd.DataFrame, val_fraction: float, seed: int) -> pd.DataFrame:
    """Add a ``fold`` column ('train' or 'val') to a table with ``id`` and ``car`` columns.

    Cars are shuffled with ``seed`` and the first round(val_fraction * cars) (at least one, and
    at least one left for training) go to validation.
    """
    cars = np.array(sorted(table["car"].unique()))
    if len(cars) < 2:
        raise ValueError(f"a split by car needs at least 2 cars, the data has {len(cars)}")
    rng = np.random.default_rng(seed)
    rng.shuffle(cars)
    n_val = min(max(1, round(val_fraction * len(cars))), len(cars) - 1)
    val = set(cars[:n_val].tolist())
    out = table[["id", "car"]].copy()
    out["fold"] = np.where(out["car"].isin(val), "val", "train")
    return out
