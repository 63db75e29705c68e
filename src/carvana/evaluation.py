"""Validation scores of stored predictions: Dice at model and full resolution, threshold curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from carvana.io import (
    mask_path,
    read_mask,
    read_prob,
    resize_mask,
    resize_prob,
    write_frame,
    write_json,
)
from carvana.metrics import dice, dice_at_thresholds

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.01), 2)


def evaluate_predictions(pred_dir: str | Path, data_dir: str | Path, ids: list[str],
                         size: tuple[int, int], threshold: float = 0.5
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-image Dice (model and full resolution) and the mean Dice at every threshold.

    ``size`` is the full image size (width, height); predictions may be stored smaller.
    """
    rows = []
    curve = np.zeros(len(THRESHOLDS))
    for image_id in tqdm(ids, desc=f"evaluate {pred_dir}", mininterval=5):
        truth = read_mask(mask_path(data_dir, image_id))
        low = read_prob(Path(pred_dir) / f"{image_id}.png")
        model_res = dice(low >= threshold, resize_mask(truth, low.shape[::-1]))
        full = resize_prob(low, size)
        curve += dice_at_thresholds(full, truth, THRESHOLDS)
        rows.append({"id": image_id, "dice_model_res": model_res,
                     "dice_full_res": dice(full >= threshold, truth)})
    per_image = pd.DataFrame(rows)
    thresholds = pd.DataFrame({"threshold": THRESHOLDS, "dice": curve / max(len(ids), 1)})
    return per_image, thresholds


def write_evaluation(per_image: pd.DataFrame, thresholds: pd.DataFrame, model: str,
                     out_json: str | Path, out_csv: str | Path, out_thresholds: str | Path,
                     extra: dict | None = None) -> dict:
    """Write the per-image table, the threshold curve and a metrics summary."""
    best = thresholds.loc[thresholds["dice"].idxmax()]
    summary = {
        "model": model,
        "val_images": len(per_image),
        "val_dice_model_res": round(float(per_image["dice_model_res"].mean()), 6),
        "val_dice_full_res": round(float(per_image["dice_full_res"].mean()), 6),
        "best_threshold": float(best["threshold"]),
        "val_dice_full_res_best_threshold": round(float(best["dice"]), 6),
        **(extra or {}),
    }
    write_frame(per_image, out_csv, float_format="%.6f")
    write_frame(thresholds, out_thresholds, float_format="%.6f")
    write_json(out_json, summary)
    return summary
