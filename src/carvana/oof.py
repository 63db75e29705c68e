"""Out-of-fold low-res maps: the 4th channel a depth model trains on, made as wrong as on an
unseen car.

A depth model reads its low-res model's map of the same photo. In prediction that map is of a
car the low-res model never saw; in training, by default, of a car it trained on, and so far
more exact (docs/real-photos.md, eleventh pass). With ``depth_folds: k`` the train cars are
dealt into k folds; a copy of the low-res model trains on the other folds' cars and maps the
held-out fold's photos, and the depth model trains (and validates, in training) on those
maps. Its scored validation predictions and its test predictions read the low-res model's own
maps.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from carvana.io import atomic_path


def fold_name(model: str, k: int, fold: int) -> str:
    """The name a fold copy of low-res ``model`` trains and is checked under."""
    return f"{model}_oof{fold}of{k}"


def car_folds(split: pd.DataFrame, k: int) -> dict[str, int]:
    """Each car of ``split`` (columns id, car, fold), train and validation cars alike, dealt to
    one of ``k`` folds in sorted order: car j goes to fold j mod k."""
    cars = sorted(split["car"].unique())
    if k < 2:
        raise ValueError(f"depth_folds: {k} folds; out-of-fold maps need at least 2")
    if len(cars) < k:
        raise ValueError(f"depth_folds: {k} folds, but the train photos hold {len(cars)} cars; "
                         f"set depth_folds to at most {len(cars)} (or 0 to train on the "
                         "low-res model's own maps)")
    return {car: j % k for j, car in enumerate(cars)}


def fold_split(split: pd.DataFrame, k: int, fold: int) -> pd.DataFrame:
    """The split a fold copy trains on: the held-out fold's cars validate ('val', and are the
    photos it maps), every other car trains."""
    if not 0 <= fold < k:
        raise ValueError(f"fold {fold} is not one of 0..{k - 1}")
    folds = car_folds(split, k)
    out = split[["id", "car"]].copy()
    out["fold"] = ["val" if folds[car] == fold else "train" for car in out["car"]]
    return out


def gather_maps(ids: list[str], fold_preds: list[str], preds: str) -> None:
    """One folder ``preds`` of maps of every photo in ``ids``, each from the fold folder that
    mapped it; a photo missing, mapped twice or not in ``ids`` is an error naming it."""
    found: dict[str, Path] = {}
    for folder in fold_preds:
        for path in sorted(Path(folder).glob("*.png")):
            if path.stem in found:
                raise ValueError(f"{path}: photo {path.stem} is mapped by two folds "
                                 f"({found[path.stem].parent} too)")
            found[path.stem] = path
    missing = [i for i in ids if i not in found]
    extra = sorted(set(found) - set(ids))
    if missing or extra:
        raise ValueError(f"out-of-fold maps in {fold_preds}: {len(missing)} train photos "
                         f"missing (first {missing[:3]}), {len(extra)} not among the train "
                         f"photos (first {extra[:3]})")
    out = Path(preds)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for image_id in ids:
        with atomic_path(out / f"{image_id}.png") as tmp:
            shutil.copyfile(found[image_id], tmp)
