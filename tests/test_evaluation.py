"""Validation scores from stored predictions, at model and at full resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carvana.evaluation import evaluate_predictions
from carvana.io import write_mask_gif, write_prob


def test_known_scores(tmp_path: Path) -> None:
    mask = np.zeros((64, 96), np.uint8)
    mask[16:48, 24:72] = 1  # exactly 16x16 at 32x32 after area resizing
    write_mask_gif(tmp_path / "data" / "train_masks" / "0123456789ab_01_mask.gif", mask)
    write_mask_gif(tmp_path / "data" / "train_masks" / "0123456789ab_02_mask.gif", mask)
    low = np.zeros((32, 32), np.float32)
    low[8:24, 8:24] = 1.0
    write_prob(tmp_path / "pred" / "0123456789ab_01.png", low)  # right
    write_prob(tmp_path / "pred" / "0123456789ab_02.png", np.zeros((32, 32)))  # empty
    per_image, curve = evaluate_predictions(tmp_path / "pred", tmp_path / "data",
                                            ["0123456789ab_01", "0123456789ab_02"], (96, 64))
    right, empty = per_image.iloc[0], per_image.iloc[1]
    assert right["dice_model_res"] == 1.0
    assert right["dice_full_res"] > 0.97  # bilinear upsampling blurs only the edge
    assert empty["dice_model_res"] == 0.0 and empty["dice_full_res"] == 0.0
    at_half = curve.loc[np.isclose(curve["threshold"], 0.5), "dice"].item()
    assert np.isclose(at_half, per_image["dice_full_res"].mean())
