"""The competition score: Dice per image, 2|A∩B| / (|A|+|B|), 1 when both masks are empty."""

from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks of the same shape (nonzero = foreground)."""
    if pred.shape != truth.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs truth {truth.shape}")
    p = pred.astype(bool, copy=False)
    t = truth.astype(bool, copy=False)
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, t).sum()) / total


def dice_at_thresholds(
    prob: np.ndarray, truth: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Dice of ``prob >= t`` against ``truth`` for every t, in one pass over a histogram.

    ``prob`` may be uint8 (0..255) or float in [0, 1]; thresholds are in [0, 1].
    """
    q = prob if prob.dtype == np.uint8 else np.clip(np.rint(prob * 255), 0, 255).astype(np.uint8)
    t = truth.astype(bool, copy=False).ravel()
    q = q.ravel()
    pos = np.bincount(q[t], minlength=256)  # foreground pixels per probability level
    allc = np.bincount(q, minlength=256)
    # pixels with level >= k, for every k
    pos_ge = np.cumsum(pos[::-1])[::-1]
    all_ge = np.cumsum(allc[::-1])[::-1]
    n_true = int(t.sum())
    levels = np.clip(np.ceil(np.asarray(thresholds) * 255 - 1e-9), 0, 255).astype(int)
    inter = pos_ge[levels]
    denom = all_ge[levels] + n_true
    return np.where(denom == 0, 1.0, 2.0 * inter / np.maximum(denom, 1))
