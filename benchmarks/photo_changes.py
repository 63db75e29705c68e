"""Which photos a lever moved: per-photo Dice of two finished ``real_splits.py`` runs of the
same split (the preset and a change of it), side by side.

A split's mean hides whether a change lifts most photos a little or a few a lot (issue 15:
twice the depth steps lifted 20 of 32 photos on split A and still lost, on three of the
pickup's photos). Run on split folders (each holding ``run/``, ``data/`` and
``test_cars.json``) of the same test cars:

    python benchmarks/photo_changes.py /work/runs/s21/rA/A /work/runs/s25/d2A/A --worst 5

prints the photos that rose and fell, the mean change per car and the largest changes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from real_splits import kept_photos, photo_dice  # this folder's: run as a script, on sys.path

from carvana.ids import car_of


def split_dice(split: Path) -> pd.Series:
    """Per-photo Dice of a finished split folder's submission (its test cars' own photos)."""
    return photo_dice(split / "run" / "results" / "submission.csv.gz",
                      split / "data" / "truth" / "test_masks.csv", kept_photos(split))


def photo_changes(old: pd.Series, new: pd.Series) -> pd.DataFrame:
    """Old and new Dice of the photos both runs scored, and the change, lowest first."""
    if set(old.index) != set(new.index):
        raise SystemExit(f"the runs scored different photos: {sorted(set(old.index) ^ set(new.index))[:5]} "
                         "(compare runs of the same split)")
    table = pd.DataFrame({"old": old, "new": new.reindex(old.index)})
    table["change"] = table["new"] - table["old"]
    return table.sort_values("change", kind="stable")


def summary(table: pd.DataFrame, worst: int) -> str:
    """Markdown: the mean change, photos up and down, per car, and the largest changes."""
    cars = table.groupby([car_of(i.removesuffix(".jpg")) for i in table.index])
    lines = [f"mean {table['old'].mean():.5f} -> {table['new'].mean():.5f} "
             f"({table['change'].mean():+.5f}); photos up {(table['change'] > 0).sum()}, "
             f"down {(table['change'] < 0).sum()}, unchanged {(table['change'] == 0).sum()}",
             "", "| car | old | new | change |", "|---|---|---|---|"]
    for car, part in cars:
        lines.append(f"| {car} | {part['old'].mean():.5f} | {part['new'].mean():.5f} | "
                     f"{part['change'].mean():+.5f} |")
    lines += ["", "| photo | old | new | change |", "|---|---|---|---|"]
    shown = pd.concat([table.head(worst), table.tail(worst)]) if worst else table.iloc[:0]
    for img, row in shown[~shown.index.duplicated()].iterrows():
        lines.append(f"| {img} | {row['old']:.5f} | {row['new']:.5f} | {row['change']:+.5f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="a finished split folder (the reference)")
    parser.add_argument("new", type=Path, help="the same split run with the change")
    parser.add_argument("--worst", type=int, default=5,
                        help="how many of the largest falls and rises to list")
    args = parser.parse_args()
    print(summary(photo_changes(split_dice(args.old), split_dice(args.new)), args.worst))


if __name__ == "__main__":
    main()
