"""Does any post-processing of the ensemble's probabilities help? Scores the mean of a finished
split's stored test probabilities on its unseen cars at 0.5, raw and under each setting:

- ``morph``: thresholds 0.45 and 0.55, the largest connected component, its holes filled,
  a 1-px dilation and erosion, the mask shifted by 1 px (docs/real-photos.md, ninth pass:
  none gains 0.0001);
- ``guided``: a guided filter (He et al.) with the photo as guide (sixth pass: +0.00004 over
  three splits, not pursued).

    python benchmarks/postprocess.py /work/runs/candA/A effl0_depth_lv effl2_depth_lv --kinds morph

The folder is one split of ``benchmarks/real_splits.py`` (holding run/, data/ and
test_cars.json); only the photos of its test cars are scored (not ``--test-copies``' copies).
Prints each photo's Dice per setting, then the means over photos and per car.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from real_splits import test_shard_dirs  # this folder's: run as a script, it is on sys.path

from carvana import rle
from carvana.ids import car_of
from carvana.io import full_size_prob
from carvana.metrics import dice

SHAPE = (1280, 1918)
SETTINGS = ([("gray", r, e) for r in (1, 2, 4) for e in (1e-4, 1e-3, 1e-2)]
            + [("color", r, e) for r in (2, 4) for e in (1e-4, 1e-3)])
KERNEL = np.ones((3, 3), np.uint8)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The mask's largest 8-connected component (the mask itself when it is empty)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask with every background region that does not touch the border filled."""
    n, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return mask | ~np.isin(labels, border[border > 0]) & (labels > 0)


def morph_settings(p: np.ndarray) -> dict[str, np.ndarray]:
    """The thresholded and morphological variants of the probabilities ``p``."""
    mask = p >= 0.5
    big = largest_component(mask)
    return {"t0.45": p >= 0.45, "t0.55": p >= 0.55, "largest": big,
            "largest filled": fill_holes(big),
            "dilate 1px": cv2.dilate(mask.astype(np.uint8), KERNEL) > 0,
            "erode 1px": cv2.erode(mask.astype(np.uint8), KERNEL) > 0,
            **{f"shift {name}": np.roll(mask, step, axis=axis)  # is the edge offset?
               for name, step, axis in (("right", 1, 1), ("left", -1, 1), ("down", 1, 0),
                                        ("up", -1, 0))}}


def box(x: np.ndarray, r: int) -> np.ndarray:
    """The mean over a (2r+1)² window."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_gray(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """The grey-guide filter: ``p`` locally a linear function of ``guide``."""
    mi, mp = box(guide, r), box(p, r)
    a = (box(guide * p, r) - mi * mp) / (box(guide * guide, r) - mi * mi + eps)
    return box(a, r) * guide + box(mp - a * mi, r)


def guided_color(img: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """The colour-guide filter (a 3x3 covariance per pixel)."""
    mi = [box(img[..., c], r) for c in range(3)]
    mp = box(p, r)
    cov = np.stack([box(img[..., c] * p, r) - mi[c] * mp for c in range(3)], -1)
    var = np.empty((*p.shape, 3, 3), np.float32)
    for c in range(3):
        for d in range(c, 3):
            var[..., c, d] = var[..., d, c] = box(img[..., c] * img[..., d], r) - mi[c] * mi[d]
    var += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(var, cov[..., None])[..., 0]
    b = mp - sum(a[..., c] * mi[c] for c in range(3))
    return sum(box(a[..., c], r) * img[..., c] for c in range(3)) + box(b, r)


def score_photo(root: Path, img: str, code: str, dirs: dict[str, dict[str, Path]],
                kinds: list[str]) -> dict:
    """One photo's Dice, raw and under every setting of ``kinds``."""
    iid = img.removesuffix(".jpg")
    true = rle.decode(code, SHAPE).astype(bool)
    p = np.mean([full_size_prob(d[iid], iid, SHAPE[::-1]) for d in dirs.values()],
                axis=0).astype(np.float32)
    row = {"id": iid, "car": car_of(iid), "raw": dice(p >= 0.5, true)}
    if "morph" in kinds:
        row |= {name: dice(mask, true) for name, mask in morph_settings(p).items()}
    if "guided" not in kinds:
        return row
    bgr = cv2.imread(str(root / "data/kaggle/test" / img)).astype(np.float32) / 255
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    for kind, r, eps in SETTINGS:
        q = guided_gray(gray, p, r, eps) if kind == "gray" else guided_color(bgr, p, r, eps)
        row[f"{kind} r{r} eps{eps:g}"] = dice(q >= 0.5, true)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", type=Path, help="one split folder of real_splits.py")
    parser.add_argument("models", nargs="+", help="models whose stored probabilities to mean")
    parser.add_argument("--kinds", nargs="+", choices=["morph", "guided"],
                        default=["morph", "guided"], help="which settings to score")
    args = parser.parse_args()
    root = args.split
    cars = json.loads((root / "test_cars.json").read_text())
    truth = pd.read_csv(root / "data/truth/test_masks.csv").set_index("img")["rle_mask"]
    dirs = test_shard_dirs(root / "run/results", args.models)
    rows = []
    for img, code in truth.items():
        if car_of(img.removesuffix(".jpg")) in cars:
            rows.append(score_photo(root, img, code, dirs, args.kinds))
            print(rows[-1]["id"], {k: round(v, 5) for k, v in rows[-1].items()
                                   if k not in ("id", "car")}, flush=True)
    table = pd.DataFrame(rows)
    cols = [c for c in table.columns if c not in ("id", "car")]
    print(f"{root}: {len(table)} photos")
    print(table[cols].mean().round(5).sort_values().to_string())
    print(table.groupby("car")[cols].mean().round(5).T.to_string())


if __name__ == "__main__":
    main()
