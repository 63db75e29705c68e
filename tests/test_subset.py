"""carvana-subset: whole cars to test, named or the last in id order (the shared sample)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from carvana.subset import SubsetSpec, make_subset


def test_named_test_cars_move_whole_and_train_on_the_rest(sample_dir: Path,
                                                          tmp_path: Path) -> None:
    cars = make_subset(sample_dir, tmp_path, SubsetSpec(test=("03a857ce842d", "04bd942b463b"),
                                                        train_cars=2, width=64))
    assert cars["test"] == ["03a857ce842d", "04bd942b463b"]
    assert cars["train"] == ["00087a6bd4dc", "02159e548029"]  # the rest, in id order
    truth = pd.read_csv(tmp_path / "truth/test_masks.csv")
    assert sorted({img[:12] for img in truth["img"]}) == cars["test"] and len(truth) == 32
    assert not any(p.name.startswith("03a857ce842d") for p in (tmp_path / "kaggle/train").iterdir())
    with pytest.raises(ValueError, match=r"test cars \['ffffffffffff'\] are not in"):
        make_subset(sample_dir, tmp_path / "bad", SubsetSpec(test=("ffffffffffff",)))


@pytest.mark.parametrize("count", [0, 6])
def test_a_train_car_count_outside_the_sample_is_an_error(sample_dir: Path, tmp_path: Path,
                                                          count: int) -> None:
    """No empty train set and no silent shortfall: the sample's 7 cars less 2 to test."""
    with pytest.raises(ValueError, match=r"train_cars must be 1\.\.5"):
        make_subset(sample_dir, tmp_path, SubsetSpec(test_cars=2, train_cars=count))
