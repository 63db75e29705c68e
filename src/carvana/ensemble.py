"""Ensembles: weighted averages of full-size probability maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from carvana.io import full_size_prob, write_prob


def ensemble_to_dir(members: dict[str, tuple[str | Path, float]], ids: list[str],
                    size: tuple[int, int], out_dir: str | Path) -> None:
    """Weighted average of the members' full-size probabilities, written per image.

    ``members`` maps a model name to (its prediction folder, weight); weights are normalised.
    """
    total = sum(w for _, w in members.values())
    if total <= 0:
        raise ValueError("ensemble weights must add up to more than 0")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for image_id in tqdm(ids, desc=f"ensemble {out_dir}", mininterval=5):
        acc = np.zeros(size[::-1], np.float32)
        for pred_dir, weight in members.values():
            acc += (weight / total) * full_size_prob(pred_dir, image_id, size)
        write_prob(out_dir / f"{image_id}.png", acc)
