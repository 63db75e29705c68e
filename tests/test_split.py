"""The validation split keeps every car on one side."""

from __future__ import annotations

import pandas as pd
import pytest

from carvana.split import split_by_car


def _table(n_cars: int) -> pd.DataFrame:
    cars = [f"{k:012x}" for k in range(n_cars)]
    ids = [f"{c}_{a:02d}" for c in cars for a in range(1, 17)]
    return pd.DataFrame({"id": ids, "car": [i.split("_")[0] for i in ids]})


def test_grouped_and_sized() -> None:
    folds = split_by_car(_table(10), 0.2, seed=1)
    assert folds.groupby("car")["fold"].nunique().max() == 1
    assert folds.loc[folds["fold"] == "val", "car"].nunique() == 2
    assert (folds["fold"] == "val").sum() == 32


def test_deterministic_and_seed_dependent() -> None:
    table = _table(20)
    a = split_by_car(table, 0.25, seed=3)
    assert a.equals(split_by_car(table, 0.25, seed=3))
    assert not a.equals(split_by_car(table, 0.25, seed=4))


def test_keeps_one_car_each_side() -> None:
    folds = split_by_car(_table(2), 0.9, seed=0)
    assert sorted(folds["fold"].unique()) == ["train", "val"]
    with pytest.raises(ValueError, match="at least 2 cars"):
        split_by_car(_table(1), 0.2, seed=0)
