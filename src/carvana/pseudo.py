"""Pseudo-labels: the test photos labelled by an ensemble, for a fine-tune of the
full-resolution models on train plus test photos (as the competition's 1st place did).

Only confident pixels are labelled: where the ensemble's probability lies strictly between
``low`` and ``high`` the pixel is ``IGNORE``, left out of the loss. A label PNG stores 0
(background), 255 (car) and 128 (ignored), so a person can look at it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from carvana.ensemble import average
from carvana.io import IGNORE, DataError, write_labels


def labels_from_prob(prob: np.ndarray, *, low: float, high: float) -> np.ndarray:
    """uint8 labels of a probability map: 1 where p >= high, 0 where p <= low, else IGNORE."""
    if not 0 <= low < high <= 1:
        raise ValueError(f"pseudo-label band needs 0 <= low < high <= 1, got {low}, {high}")
    labels = np.full(prob.shape, IGNORE, np.uint8)
    labels[prob >= high] = 1
    labels[prob <= low] = 0
    return labels


def pseudo_labels_to_dir(members: dict[str, tuple[str | Path, float]], ids: list[str], *,
                         size: tuple[int, int], low: float, high: float,
                         out_dir: str | Path) -> dict[str, float]:
    """Label each test image from the members' weighted average; the share of ignored and of
    car pixels over the shard. An image whose pixels are nearly all ignored, or that has no
    confident car pixel at all, is an error: such labels would teach the model nothing true."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ignored, car = [], []
    for image_id in tqdm(ids, desc=f"pseudo-labels {out_dir}", mininterval=5):
        labels = labels_from_prob(average(members, image_id, size), low=low, high=high)
        ignored.append(float((labels == IGNORE).mean()))
        car.append(float((labels == 1).mean()))
        if car[-1] == 0 or ignored[-1] > 0.5:
            raise DataError(
                f"{image_id}: the ensemble is confident of no car pixel or ignores "
                f"{ignored[-1]:.0%} of the photo: its pseudo-labels would be wrong. Check the "
                "ensemble's test predictions, or set pseudo_labels: rounds: 0")
        write_labels(out_dir / f"{image_id}.png", labels)
    return {"images": len(ids), "ignored_fraction": float(np.mean(ignored)) if ids else 0.0,
            "car_fraction": float(np.mean(car)) if ids else 0.0,
            "max_ignored_fraction": max(ignored, default=0.0)}
