"""Train/validation split grouped by car, so the 16 views of one car never straddle it; and
which pseudo-labelled test photos join a training set."""

from __future__ import annotations

from pathlib import Path

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


def fold_ids(split_csv: str | Path, fold: str = "all") -> list[str]:
    """Ids of one fold of ``split.csv`` ('train', 'val', or 'all'), in file order."""
    if fold not in ("train", "val", "all"):
        raise ValueError(f"fold must be 'train', 'val' or 'all', got {fold!r}")
    folds = pd.read_csv(split_csv, dtype=str)
    return folds["id"].tolist() if fold == "all" else folds.loc[folds["fold"] == fold, "id"].tolist()


def select_ids(*, ids: list[str] | None = None, split: str | Path | None = None,
               fold: str | None = None) -> list[str]:
    """The images a stage works on: a test shard's ``ids``, or ``fold`` of ``split``.csv
    (the rule says which: one or the other, never both)."""
    if (ids is None) == (split is None or fold is None):
        raise ValueError("give either ids (a test shard) or split and fold (train images)")
    return list(ids) if ids is not None else fold_ids(split, fold)


def pseudo_cap(own: int, max_share: float | None) -> int | None:
    """The most pseudo-labelled photos that train beside ``own`` train photos when they may make
    at most ``max_share`` of the training set (None: no cap)."""
    if max_share is None:
        return None
    if not 0 < max_share < 1:
        raise ValueError(f"pseudo_labels: max_share must lie in (0, 1), got {max_share}")
    return int(max_share * own / (1 - max_share) + 1e-9)  # pseudo / (own + pseudo) <= share


def thin_to_share(ids_by_shard: list[list[str]], *, own: int,
                  max_share: float | None) -> list[list[str]]:
    """The pseudo-labelled photos of each shard that train beside ``own`` train photos, at most
    ``max_share`` of the training set: an evenly spread subset (in shard and id order) when
    there are more, all of them when ``max_share`` is None. On the Kaggle data (100,064 test
    photos, 5,088 train) they would otherwise be 95 % of it."""
    cap, total = pseudo_cap(own, max_share), sum(len(ids) for ids in ids_by_shard)
    if cap is None or total <= cap:
        return [list(ids) for ids in ids_by_shard]
    if cap < 1:
        raise ValueError(f"pseudo_labels: max_share {max_share} of {own} train photos keeps "
                         f"none of the {total} pseudo-labelled ones: raise it, or set rounds: 0")
    keep = set(np.linspace(0, total - 1, cap).round().astype(int).tolist())
    out, index = [], 0
    for ids in ids_by_shard:
        out.append([i for k, i in enumerate(ids, start=index) if k in keep])
        index += len(ids)
    return out
