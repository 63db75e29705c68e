"""Ensembles: weighted averages of full-size probability maps, and weights chosen on validation.

``choose_weights`` scores every weighting on a grid of the simplex (steps of ``step``) by mean
per-image Dice of the validation images at the submission threshold, and keeps the best. A
member that only lowers the score gets weight 0, and the choice says so.

Scoring all weightings costs little: where every member's probability lies on the same side
of the threshold, every weighted average (weights adding up to 1) does too, so only the few
pixels where the members disagree are scored per weighting.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from carvana.io import full_size_prob, write_prob

#: Scores closer than this count as equal; among them the weighting nearest to equal wins.
TIE = 1e-6


def average(members: dict[str, tuple[str | Path, float]], image_id: str,
            size: tuple[int, int]) -> np.ndarray:
    """The weighted average (weights normalised) of the members' full-size maps of one image;
    ``members`` maps a model name to (its prediction folder, weight). Weight 0 is not read."""
    total = sum(w for _, w in members.values())
    if total <= 0:
        raise ValueError("ensemble weights must add up to more than 0")
    acc = np.zeros(size[::-1], np.float32)
    for pred_dir, weight in members.values():
        if weight > 0:
            acc += (weight / total) * full_size_prob(pred_dir, image_id, size)
    return acc


def ensemble_to_dir(members: dict[str, tuple[str | Path, float]], ids: list[str],
                    size: tuple[int, int], out_dir: str | Path) -> None:
    """The members' weighted average (see ``average``), written per image."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for image_id in tqdm(ids, desc=f"ensemble {out_dir}", mininterval=5):
        write_prob(out_dir / f"{image_id}.png", average(members, image_id, size))


def weight_grid(n: int, step: float) -> np.ndarray:
    """Every weighting of ``n`` members in multiples of ``step`` that adds up to 1, (K, n)."""
    if n < 1:
        raise ValueError("an ensemble needs at least one member")
    parts = round(1 / step)
    if parts < 1 or abs(parts * step - 1) > 1e-9:
        raise ValueError(f"weight_step must divide 1 (0.1, 0.125, 0.25, ...), got {step}")
    rows = [c for c in itertools.product(range(parts + 1), repeat=n) if sum(c) == parts]
    return np.asarray(rows, dtype=np.float64) / parts


def grid_dice(probs: np.ndarray, truth: np.ndarray, grid: np.ndarray,
              threshold: float) -> np.ndarray:
    """Dice of one image under every weighting of ``grid`` (K, M): ``probs`` (M, H, W) in
    [0, 1] (multiples of 1/255, as stored), ``truth`` (H, W) bool; the ensemble stores its
    average as round(255 p) before the threshold, as here."""
    lo, hi = probs.min(axis=0), probs.max(axis=0)
    sure = lo >= threshold
    open_ = (hi >= threshold) & ~sure
    inter0, pred0, true_n = int((sure & truth).sum()), int(sure.sum()), int(truth.sum())
    avg = grid @ probs[:, open_].astype(np.float64)  # (K, pixels where members disagree)
    chosen = np.rint(avg * 255) / 255 >= threshold
    inter = inter0 + (chosen & truth[open_]).sum(axis=1)
    total = pred0 + chosen.sum(axis=1) + true_n
    return np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))


@dataclass(frozen=True)
class WeightChoice:
    """The chosen weights, the table of every weighting's validation Dice, and each member's
    score alone and the best score without it."""

    weights: dict[str, float]
    table: pd.DataFrame
    alone: dict[str, float]
    without: dict[str, float]

    @property
    def dice(self) -> float:
        """The chosen weighting's mean validation Dice."""
        return float(self.table["dice"].iloc[0])

    def notes(self) -> list[str]:
        """One line per member of weight 0: what it would have cost to keep it."""
        return [f"{m}: weight 0 — alone {self.alone[m]:.5f}; the best weighting without it "
                f"({self.without[m]:.5f}) is not beaten by any that keeps it"
                for m, w in self.weights.items() if w == 0]

    def to_json(self) -> dict[str, object]:
        """The choice as ``results/metrics/ensemble_weights.json`` holds it."""
        return {"weights": self.weights, "val_dice": round(self.dice, 6),
                "alone": {k: round(v, 6) for k, v in self.alone.items()},
                "best_without": {k: round(v, 6) for k, v in self.without.items()},
                "dropped": [m for m, w in self.weights.items() if w == 0],
                "notes": self.notes()}


def choose_weights(members: list[str], ids: list[str],
                   load: Callable[[str], tuple[np.ndarray, np.ndarray]], *,
                   threshold: float, step: float) -> WeightChoice:
    """The weighting of ``members`` with the best mean Dice over ``ids``; ``load(id)`` gives
    (probabilities (M, H, W) in ``members`` order, truth (H, W) bool)."""
    if not ids:
        raise ValueError("no validation images to choose ensemble weights on")
    grid = weight_grid(len(members), step)
    scores = np.zeros(len(grid))
    for image_id in tqdm(ids, desc="ensemble weights", mininterval=5):
        probs, truth = load(image_id)
        scores += grid_dice(probs, truth, grid, threshold)
    scores /= len(ids)
    table = pd.DataFrame(grid, columns=members)
    table["dice"] = scores
    table["distance_to_equal"] = np.abs(grid - 1 / len(members)).sum(axis=1)
    table["dice_rounded"] = np.floor(scores / TIE) * TIE
    table = (table.sort_values(["dice_rounded", "distance_to_equal"], ascending=[False, True],
                               kind="mergesort")
             .drop(columns=["dice_rounded"]).reset_index(drop=True))
    best = table.iloc[0]
    alone = {m: float(table.loc[table[m] == 1, "dice"].iloc[0]) for m in members}
    without = {m: float(table.loc[table[m] == 0, "dice"].max()) if len(members) > 1
               else float("nan") for m in members}
    return WeightChoice(weights={m: round(float(best[m]), 6) for m in members},
                        table=table, alone=alone, without=without)


def full_size_loader(pred_dirs: list[str | Path], size: tuple[int, int],
                     truth: Callable[[str], np.ndarray]
                     ) -> Callable[[str], tuple[np.ndarray, np.ndarray]]:
    """``load`` for ``choose_weights``: each member's full-size map and the true mask."""

    def load(image_id: str) -> tuple[np.ndarray, np.ndarray]:
        probs = np.stack([full_size_prob(d, image_id, size) for d in pred_dirs])
        return probs, truth(image_id).astype(bool)

    return load
