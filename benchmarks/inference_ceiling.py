"""How much can prediction alone still gain on finished real-photo runs? Three ceilings, each
scored on the test cars' own photos against their true masks:

- **seeds**: the mean of several runs' stored chain maps (the same split trained with other
  seeds), against each run alone;
- **oracle**: per photo, the better of the run's map and its chain (a gate that always
  chooses right: no real gate can beat it);
- **shifts** (``--shifts``): the run's chain predicted again with each model's probabilities
  averaged over the input shifted by a few pixels, beside the chain as predicted without
  (flips as configured in both). The box model stays unshifted: its box places the tile
  band, and a band moved by a changed box is another question than the models' own edges.

    python benchmarks/inference_ceiling.py --split A=/work/runs/s21/rA/A,/work/runs/s22/sA/A \\
        --split B=/work/runs/s21/rB/B,/work/runs/s23/sB/B --shifts 0:0 0:1 1:0 1:1

Each folder is one ``benchmarks/real_splits.py`` split (``run/``, ``data/``,
``test_cars.json``); the runs of one split must hold the same test photos. ``--map`` and
``--chain`` name the stored maps (``predict/NAME/test``) compared by the oracle.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from edge_errors import SHAPE, stored_maps  # this folder's: run as a script, it is on sys.path

from carvana import rle
from carvana.backends import Runner
from carvana.io import full_size_prob
from carvana.metrics import dice


def unseen_truths(folder: Path) -> dict[str, np.ndarray]:
    """The test cars' own photos' true masks, by photo id."""
    cars = json.loads((folder / "test_cars.json").read_text())
    truth = pd.read_csv(folder / "data" / "truth" / "test_masks.csv")
    truth = truth[truth["img"].str[:12].isin(cars)]
    return {img.removesuffix(".jpg"): rle.decode(code, SHAPE).astype(bool)
            for img, code in zip(truth["img"], truth["rle_mask"], strict=True)}


def _prob(maps: dict[str, Path], image_id: str) -> np.ndarray:
    return full_size_prob(maps[image_id], image_id, (SHAPE[1], SHAPE[0])).astype(np.float32)


def stored_scores(runs: list[Path], *, map_name: str, chain_name: str,
                  threshold: float = 0.5) -> pd.DataFrame:
    """One row per test photo: each run's map and chain Dice (``map0``, ``chain0``, ...), the
    per-photo better of the two (``oracle0``, ...) and, with several runs, the Dice of their
    chains' mean (``seeds``)."""
    truth = unseen_truths(runs[0])
    predict = [run / "run" / "results" / "predict" for run in runs]
    chains = [stored_maps(p / chain_name / "test") for p in predict]
    maps = [stored_maps(p / map_name / "test") for p in predict]
    for run, chain, low in zip(runs, chains, maps, strict=True):
        missing = sorted(set(truth) - set(chain) | set(truth) - set(low))
        if missing:
            raise SystemExit(f"{run}: no stored {chain_name} or {map_name} map for "
                             f"{len(missing)} of the test photos, e.g. {missing[0]} (the runs "
                             "of one split must hold the same test photos)")
    rows = []
    for image_id, true in truth.items():
        row: dict[str, float | str] = {"id": image_id, "car": image_id[:12]}
        probs = []
        for k, (chain, low) in enumerate(zip(chains, maps, strict=True)):
            probs.append(_prob(chain, image_id))
            row[f"chain{k}"] = dice(probs[-1] >= threshold, true)
            row[f"map{k}"] = dice(_prob(low, image_id) >= threshold, true)
            row[f"oracle{k}"] = max(row[f"chain{k}"], row[f"map{k}"])  # type: ignore[type-var]
        if len(runs) > 1:
            row["seeds"] = dice(np.mean(probs, axis=0) >= threshold, true)
        rows.append(row)
    return pd.DataFrame(rows)


class ShiftedRunner:
    """A runner whose output is the mean probability over the input shifted by (dy, dx)
    pixels (edge rows repeated), each map shifted back, returned as a logit: test-time
    augmentation by translation, averaged as the flips are (probabilities, not logits)."""

    def __init__(self, inner: Runner, shifts: list[tuple[int, int]]) -> None:
        self.inner, self.shifts = inner, shifts

    def logits(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[2:]
        total = np.zeros((len(x), 1, h, w), np.float64)
        for dy, dx in self.shifts:
            moved = np.pad(x, ((0, 0), (0, 0), (dy, 0), (dx, 0)), mode="edge")[..., :h, :w]
            out = self.inner.logits(np.ascontiguousarray(moved))
            back = np.pad(out, ((0, 0), (0, 0), (0, dy), (0, dx)), mode="edge")
            total += 1.0 / (1.0 + np.exp(-back[..., dy:, dx:].astype(np.float64)))
        prob = np.clip(total / len(self.shifts), 1e-7, 1 - 1e-7)
        return np.log(prob / (1.0 - prob)).astype(np.float32)


def shifted_scores(run: Path, shifts: list[tuple[int, int]]) -> pd.DataFrame:
    """Each test photo's Dice from the run's chain predicted again, as stored and shifted."""
    from carvana.photos import read_photo
    from carvana.segmenter import Segmenter

    truth = unseen_truths(run)
    seg = Segmenter.from_results(run / "run" / "results")
    plain = dict(seg.runners)
    box = str(seg.chain.bbox["model"]) if seg.chain.bbox else None
    shifted = {name: r if name == box else ShiftedRunner(r, shifts) for name, r in plain.items()}
    rows = []
    for image_id, true in truth.items():
        photo = read_photo(run / "data" / "kaggle" / "test" / f"{image_id}.jpg")
        row: dict[str, float | str] = {"id": image_id, "car": image_id[:12]}
        for label, runners in (("plain", plain), ("shifted", shifted)):
            seg.runners = runners  # type: ignore[assignment]
            start = time.perf_counter()
            level = seg.probabilities(photo)
            row[f"{label}_s"] = time.perf_counter() - start
            prob = level.astype(np.float32) / np.float32(255.0)  # as Segmenter.mask reads it
            row[label] = dice(prob >= np.float32(seg.chain.threshold), true)
        rows.append(row)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> str:
    """Mean Dice per column over the photos, per car, and photos below 0.99."""
    cols = [c for c in table.columns if c not in ("id", "car") and not c.endswith("_s")]
    lines = []
    for col in cols:
        cars = " ".join(f"{car}: {v:.5f}" for car, v in table.groupby("car")[col].mean().items())
        lines.append(f"  {col:>8}: {table[col].mean():.5f} (below 0.99: "
                     f"{int((table[col] < 0.99).sum())}; {cars})")
    return "\n".join(lines)


def _shift(spec: str) -> tuple[int, int]:
    dy, _, dx = spec.partition(":")
    if not (dy.isdigit() and dx.isdigit()):
        raise argparse.ArgumentTypeError(f"{spec!r}: expected DY:DX, two whole pixels >= 0")
    return int(dy), int(dx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", action="append", required=True,
                        metavar="NAME=FOLDER[,FOLDER...]")
    parser.add_argument("--map", default="effl0_640_pl1", help="the map the oracle weighs")
    parser.add_argument("--chain", default="ensemble", help="the chain's stored maps")
    parser.add_argument("--shifts", nargs="+", type=_shift, default=None, metavar="DY:DX")
    args = parser.parse_args()
    for spec in args.split:
        name, _, folders = spec.partition("=")
        runs = [Path(f) for f in folders.split(",") if f]
        if not name or not runs:
            raise SystemExit(f"--split {spec}: expected NAME=FOLDER[,FOLDER...]")
        print(f"split {name} ({len(runs)} run(s)): stored maps")
        print(summary(stored_scores(runs, map_name=args.map, chain_name=args.chain)))
        if args.shifts:
            table = shifted_scores(runs[0], args.shifts)
            print(f"split {name}, {runs[0]}: shifts {args.shifts} "
                  f"({table['plain_s'].median():.2f} / {table['shifted_s'].median():.2f} s "
                  "a photo, median)")
            print(summary(table))


if __name__ == "__main__":
    main()
