"""Where the remaining errors of finished real-photo runs lie: every test photo's wrong pixels
counted by distance to the true edge (``carvana.analysis.worst.band_counts``),
extra and missed pixels apart, per model and split, as a table and one figure; and how many
lie in the car's lower part (``carvana.analysis.worst.lower_part``: the lowest quarter of the
true mask's height and below: wheels, sill, floor shadow) or above it.

Numbers only: the figure is drawn from counts, so it can be shared where the photos cannot
(the Kaggle photos are not ours to redistribute; the run's own overlays,
``results/analysis/worst/test.png``, show the photos).

    python benchmarks/edge_errors.py --split A=/tmp/splits/A --split B=/tmp/splits/B \\
        --models effl0_320 effl2_depth effl0_depth_lv+effl2_depth --out docs/img/edge-errors.png

A model written ``a+b`` is the mean of the two models' stored maps (an ensemble the run did
not store). ``--stored SPLIT:MODEL=NAME`` reads MODEL's maps in that split from the run's
``predict/NAME`` (a model that run trained under another name), so one model list serves
every split:

    python benchmarks/edge_errors.py --split A=/work/runs/splitsF/A --split B=/work/runs/splits/B \
        --split C=/work/runs/splitsC2/C --models effl0_320 effl0_depth_lv+effl2_depth_lv \
        --stored A:effl0_depth_lv=effl0_depth_lv2 --stored B:effl0_depth_lv=effl0_depth_lv2 \
        --out docs/img/edge-errors.png

Each split folder is one ``benchmarks/real_splits.py`` split (``run/``, ``data/`` and
``test_cars.json``); only the test cars' own photos are counted (not ``--test-copies``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from carvana import rle  # noqa: E402
from carvana.analysis.worst import band_counts, edge_distance, lower_part  # noqa: E402
from carvana.io import full_size_prob  # noqa: E402
from carvana.plots import save  # noqa: E402

SHAPE = (1280, 1918)
BANDS = [("within 1 px", "#1b9e77"), ("1-3 px", "#d95f02"), ("beyond 3 px", "#7570b3")]


def count_split(folder: Path, models: list[str], threshold: float,
                stored: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (model, test photo, kind, region): the photo's wrong pixels by band, extra
    and missed apart, in the car's lower part or above it.

    ``stored`` maps a model's name to the name its maps are stored under in this run.
    """
    stored = stored or {}
    cars = json.loads((folder / "test_cars.json").read_text())
    truth = pd.read_csv(folder / "data" / "truth" / "test_masks.csv")
    truth = truth[truth["img"].str[:12].isin(cars)]
    rows = []
    predict = folder / "run" / "results" / "predict"
    maps = {model: [stored_maps(predict / stored.get(part, part) / "test")
                    for part in model.split("+")] for model in models}
    for img, code in zip(truth["img"], truth["rle_mask"], strict=True):
        image_id = img.removesuffix(".jpg")
        true = rle.decode(code, SHAPE).astype(bool)
        dist = edge_distance(true)  # one truth decode and distance map a photo, for every model
        low = lower_part(true)
        for model in models:
            prob = np.mean([full_size_prob(m[image_id], image_id, (SHAPE[1], SHAPE[0]))
                            for m in maps[model]], axis=0)
            pred = prob >= threshold
            for kind, wrong in (("extra", pred & ~true), ("missed", true & ~pred)):
                for region, inside in (("lower part", low), ("above", ~low)):
                    counts = band_counts(dist, wrong & inside)
                    rows.append({"model": model, "id": image_id, "kind": kind, "region": region,
                                 "within 1 px": counts["wrong_within_1px"],
                                 "1-3 px": (counts["wrong_within_3px"]
                                            - counts["wrong_within_1px"]),
                                 "beyond 3 px": counts["wrong_beyond_3px"]})
    return pd.DataFrame(rows)


def summaries(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean wrong pixels a photo by band: per (split, model, kind), and per (split, model,
    region) with extra and missed added."""
    bands = [b for b, _ in BANDS]
    photos = table.groupby(["split", "model", "kind", "id"], sort=False)[bands].sum()
    by_kind = photos.groupby(level=["split", "model", "kind"], sort=False).mean()
    regions = table.groupby(["split", "model", "region", "id"], sort=False)[bands].sum()
    by_region = regions.groupby(level=["split", "model", "region"], sort=False).mean()
    by_region["all"] = by_region[bands].sum(axis=1)
    return by_kind, by_region


def stored_maps(folder: Path) -> dict[str, Path]:
    """Each stored test map's photo id and shard folder; none stored is an error."""
    maps = {p.stem: p.parent for p in folder.glob("*/*.png")}
    if not maps:
        raise SystemExit(f"{folder}: no stored test probabilities (is the model's name right? "
                         "--stored SPLIT:MODEL=NAME reads another name)")
    return maps


def _parse_stored(specs: list[str], splits: list[str]) -> dict[str, dict[str, str]]:
    """``SPLIT:MODEL=NAME`` options as {split: {model: name}}; an unknown split is an error."""
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        split, _, rename = spec.partition(":")
        model, _, name = rename.partition("=")
        if split not in splits or not model or not name:
            raise SystemExit(f"--stored {spec}: expected SPLIT:MODEL=NAME with SPLIT one of "
                             f"{', '.join(splits)}")
        out.setdefault(split, {})[model] = name
    return out


def _bars(ax: plt.Axes, means: pd.DataFrame, pair: tuple[str, str], title: str) -> None:
    """Stacked bars by band, two a group (``pair``: the last index level's values, the second
    hatched), one group per (split, model) of ``means``."""
    groups = list(dict.fromkeys((s, m) for s, m, _ in means.index))
    for g, (split, model) in enumerate(groups):
        for k, part in enumerate(pair):
            x, bottom = g + (k - 0.5) * 0.38, 0.0
            for band, color in BANDS:
                value = float(means.loc[(split, model, part), band])
                ax.bar(x, value, 0.36, bottom=bottom, color=color,
                       hatch="//" if k else None, edgecolor="white",
                       label=band if g == 0 and k == 0 else None)
                bottom += value
            ax.text(x, bottom, part, ha="center", va="bottom", fontsize=7, rotation=90)
    labels = [m.replace("+", " +\n") + f"\nsplit {s}" for s, m in groups]
    ax.set_xticks(range(len(groups)), labels, fontsize=7)
    ax.set_ylabel("wrong pixels a photo (mean)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)  # room for the bars' labels


def figure(by_kind: pd.DataFrame, by_region: pd.DataFrame, out: Path) -> None:
    """Two panels of :func:`summaries`' means: extra against missed pixels, and the car's
    lower part against the rest; each bar stacked by distance to the true edge."""
    groups = len(dict.fromkeys((s, m) for s, m, _ in by_kind.index))
    fig, (left, right) = plt.subplots(1, 2, figsize=(3 + 2.6 * groups, 4.4), sharey=True)
    _bars(left, by_kind, ("extra", "missed"),
          "Extra (plain) and missed (hatched) pixels")
    _bars(right, by_region, ("lower part", "above"),
          "The car's lowest quarter and below (plain: wheels,\nsill, floor shadow), the rest (hatched)")
    right.legend(title="distance to the\ntrue edge", fontsize=8, loc="upper left",
                 bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Where the errors are on unseen cars", fontsize=11)
    save(fig, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--stored", action="append", default=[], metavar="SPLIT:MODEL=NAME",
                        help="in SPLIT, read MODEL's maps from predict/NAME")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--out", required=True, help="the figure (PNG); the table beside it")
    args = parser.parse_args()
    splits = dict(spec.split("=", 1) for spec in args.split)
    stored = _parse_stored(args.stored, list(splits))
    parts = [count_split(Path(folder), args.models, args.threshold, stored.get(name))
             .assign(split=name) for name, folder in splits.items()]
    table = pd.concat(parts, ignore_index=True)
    out = Path(args.out)
    by_kind, by_region = summaries(table)
    figure(by_kind, by_region, out)
    by_kind.round(0).astype(np.int64).to_csv(out.with_suffix(".csv"))
    by_region.round(0).astype(np.int64).to_csv(out.with_name(f"{out.stem}-regions.csv"))
    print(by_kind.round(0).to_string())
    print(by_region.round(0).to_string())


if __name__ == "__main__":
    main()
