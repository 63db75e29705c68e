"""Out-of-fold low-res maps (carvana.oof): folds by car, the fold splits, the gathered maps."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from carvana import workflow as wf
from carvana.oof import car_folds, fold_name, fold_split
from carvana.stages import gather_oof_stage, oof_split_stage


def _split(cars: dict[str, str]) -> pd.DataFrame:
    """Two photos a car; ``cars`` maps car -> its fold in split.csv ('train' or 'val')."""
    rows = [(f"{car}_{v:02d}", car, fold) for car, fold in cars.items() for v in (1, 2)]
    return pd.DataFrame(rows, columns=["id", "car", "fold"])


SPLIT = _split({"ccc": "train", "aaa": "val", "eee": "train", "bbb": "train", "ddd": "train"})


def test_cars_are_dealt_in_sorted_order_validation_cars_too() -> None:
    assert car_folds(SPLIT, 2) == {"aaa": 0, "bbb": 1, "ccc": 0, "ddd": 1, "eee": 0}
    assert car_folds(SPLIT, 5) == {"aaa": 0, "bbb": 1, "ccc": 2, "ddd": 3, "eee": 4}


def test_each_fold_holds_out_its_cars_and_trains_on_the_rest() -> None:
    held = []
    for fold in range(3):
        table = fold_split(SPLIT, 3, fold)
        assert table["id"].tolist() == SPLIT["id"].tolist()
        val = set(table.loc[table["fold"] == "val", "car"])
        train = set(table.loc[table["fold"] == "train", "car"])
        assert val and not val & train and val | train == set(SPLIT["car"])
        held.append(val)
    # every car is held out exactly once: each photo gets one out-of-fold map
    assert sorted(c for v in held for c in v) == sorted(set(SPLIT["car"]))
    assert held == [{"aaa", "ddd"}, {"bbb", "eee"}, {"ccc"}]


@pytest.mark.parametrize(("k", "message"), [(1, "at least 2"), (6, "at most 5")])
def test_a_fold_count_the_cars_cannot_fill_is_an_error(k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fold_split(SPLIT, k, 0)


def test_a_fold_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="fold 2 is not one of 0..1"):
        fold_split(SPLIT, 2, 2)


def test_the_split_stage_writes_the_fold(tmp_path: Path) -> None:
    SPLIT.to_csv(tmp_path / "split.csv", index=False)
    oof_split_stage(split=str(tmp_path / "split.csv"), k=2, fold=1,
                    folds=str(tmp_path / "oof" / "1.csv"))
    table = pd.read_csv(tmp_path / "oof" / "1.csv", dtype=str)
    assert set(table.loc[table["fold"] == "val", "car"]) == {"bbb", "ddd"}


def _maps(folder: Path, ids: list[str]) -> str:
    folder.mkdir(parents=True)
    for image_id in ids:
        (folder / f"{image_id}.png").write_bytes(f"map of {image_id} from {folder.name}".encode())
    return str(folder)


def test_gather_takes_each_photo_from_the_fold_that_held_it_out(tmp_path: Path) -> None:
    SPLIT.to_csv(tmp_path / "split.csv", index=False)
    ids = SPLIT["id"].tolist()
    folds = [_maps(tmp_path / "f0", ids[:4]), _maps(tmp_path / "f1", ids[4:])]
    out = tmp_path / "oof"
    gather_oof_stage(split=str(tmp_path / "split.csv"), fold_preds=folds, preds=str(out))
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(ids)
    assert (out / f"{ids[0]}.png").read_bytes() == f"map of {ids[0]} from f0".encode()
    assert (out / f"{ids[-1]}.png").read_bytes() == f"map of {ids[-1]} from f1".encode()


@pytest.mark.parametrize(("parts", "message"), [
    ((slice(0, 4), slice(3, 10)), "mapped by two folds"),
    ((slice(0, 4), slice(5, 10)), "1 train photos missing"),
])
def test_gather_refuses_a_photo_missing_or_mapped_twice(tmp_path: Path, parts, message) -> None:
    SPLIT.to_csv(tmp_path / "split.csv", index=False)
    ids = SPLIT["id"].tolist()
    folds = [_maps(tmp_path / f"f{n}", ids[part]) for n, part in enumerate(parts)]
    with pytest.raises(ValueError, match=message):
        gather_oof_stage(split=str(tmp_path / "split.csv"), fold_preds=folds,
                         preds=str(tmp_path / "oof"))
    assert not (tmp_path / "oof").exists()


def _config(**depth: object) -> dict:
    return {"training": {"lr": 0.1, "train_on_val": True},
            "models": {"low": {"arch": "unet", "size": 64},
                       "deep": {"arch": "unet", "input": "tiles", "depth_from": "low", **depth}}}


def test_the_depth_model_trains_on_the_out_of_fold_maps_only_when_asked() -> None:
    assert wf.depth_train_maps(_config(), "deep") == "results/predict/low/train_all"
    assert wf.depth_train_maps(_config(depth_folds=0), "deep") == "results/predict/low/train_all"
    assert wf.depth_train_maps(_config(depth_folds=3), "deep") == "results/predict/low/train_oof_k3"


def test_a_fold_copy_never_trains_on_its_held_out_cars() -> None:
    config = _config()
    assert wf.fold_spec(config, "low")["train"] == {"lr": 0.1, "train_on_val": False}
    assert config["training"]["train_on_val"] is True  # the config is not changed
    assert fold_name("low", 3, 1) == "low_oof1of3"
