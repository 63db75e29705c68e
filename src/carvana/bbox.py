"""Bounding boxes of masks and low-resolution predictions, and how a tile band cuts a true mask."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from carvana.io import mask_path, read_mask, read_prob
from carvana.tiling import TileGeometry, band_cuts, tile_rows

log = logging.getLogger(__name__)

# Parts of a predicted mask smaller than this share of its largest part are specks, not car:
# on an unseen grey compact the 640x960 map marked floor specks 300 rows below the car (each
# under 0.5 % of the car's area); the box reached them, and the 960-row band cut the roof.
MIN_PART = 0.02


@dataclass(frozen=True)
class Box:
    """Half-open box ``[r0, r1) x [c0, c1)`` at full resolution; never empty (empty means None)."""

    r0: int
    r1: int
    c0: int
    c1: int

    def __post_init__(self) -> None:
        if not (0 <= self.r0 < self.r1 and 0 <= self.c0 < self.c1):
            raise ValueError(f"invalid box {self}: need 0 <= r0 < r1 and 0 <= c0 < c1")

    @property
    def rows(self) -> tuple[int, int]:
        """``(r0, r1)``: the rows the tile band is built from."""
        return self.r0, self.r1

    @property
    def height(self) -> int:
        return self.r1 - self.r0

    @property
    def width(self) -> int:
        return self.c1 - self.c0


def _check_2d(arr: np.ndarray, name: str) -> None:
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D {name}, got shape {arr.shape}")


def box_from_mask(mask: np.ndarray) -> Box | None:
    """Tight box of the nonzero pixels of a 2-D mask; None if it has none."""
    _check_2d(mask, "mask")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def car_box(mask: np.ndarray, min_part: float = MIN_PART) -> Box | None:
    """Box of the car in a 2-D mask: its largest 8-connected part, with every other part of at
    least ``min_part`` of that one's area (a wheel or mirror cut off by a thin gap); smaller
    specks (a mark on the floor far below the car) are left out. None if the mask is empty."""
    _check_2d(mask, "mask")
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    parts = stats[1:]
    kept = parts[parts[:, cv2.CC_STAT_AREA] >= min_part * parts[:, cv2.CC_STAT_AREA].max()]
    left, top = kept[:, cv2.CC_STAT_LEFT], kept[:, cv2.CC_STAT_TOP]
    return Box(int(top.min()), int((top + kept[:, cv2.CC_STAT_HEIGHT]).max()),
               int(left.min()), int((left + kept[:, cv2.CC_STAT_WIDTH]).max()))


def box_from_prob(prob: np.ndarray, threshold: float, full_size: tuple[int, int]) -> Box | None:
    """Box of the car (:func:`car_box`) in ``prob >= threshold`` on a low-res (h, w) map, scaled
    to ``full_size`` (width, height).

    The map covers the whole image (squashed; the aspect need not match). Low-res pixel ``i``
    spans full rows ``[i * H / h, (i + 1) * H / h)``; starts are floored and ends ceiled (exact
    integer arithmetic), so scaling never shrinks the box. None if no pixel reaches the threshold.
    """
    _check_2d(prob, "probability map")
    width, height = full_size
    low = car_box(prob >= threshold)
    if low is None:
        return None
    h, w = prob.shape
    return Box(
        r0=low.r0 * height // h,
        r1=-(-low.r1 * height // h),
        c0=low.c0 * width // w,
        c1=-(-low.c1 * width // w),
    )


def cut_stats(mask: np.ndarray, rows: tuple[int, int]) -> dict[str, int]:
    """How the band ``rows = (a, b)`` cuts a full-size 2-D mask.

    Keys: ``mask_pixels`` and ``mask_rows`` (rows with any foreground), ``pixels_outside`` (mask
    pixels outside the band), ``rows_above`` / ``rows_below`` (mask rows above / below the band,
    0 when the mask is inside it).
    """
    _check_2d(mask, "mask")
    a, b = (int(r) for r in rows)
    if not 0 <= a <= b <= mask.shape[0]:
        raise ValueError(f"rows {rows} must lie in [0, {mask.shape[0]}]")
    per_row = np.count_nonzero(mask, axis=1)
    has = per_row > 0
    return {
        "mask_pixels": int(per_row.sum()),
        "mask_rows": int(has.sum()),
        "pixels_outside": int(per_row[:a].sum() + per_row[b:].sum()),
        "rows_above": int(has[:a].sum()),
        "rows_below": int(has[b:].sum()),
    }


BOX_COLUMNS = ["id", "r0", "r1", "c0", "c1", "band_r0", "band_r1", "empty"]


def boxes_from_predictions(pred_dir: str | Path, ids: list[str], geom: TileGeometry,
                           threshold: float, margin: int) -> pd.DataFrame:
    """Bounding box (full resolution) of each low-res prediction and its tile band of rows.

    An empty prediction gets the whole image as its box and a band centred on the image.
    """
    rows = []
    for image_id in tqdm(ids, desc=f"boxes {pred_dir}", mininterval=5):
        box = box_from_prob(read_prob(Path(pred_dir) / f"{image_id}.png"), threshold,
                            (geom.width, geom.height))
        r0, r1, c0, c1 = (box.r0, box.r1, box.c0, box.c1) if box else (0, geom.height, 0, geom.width)
        band = tile_rows(r0, r1, geom, margin)
        rows.append((image_id, r0, r1, c0, c1, band[0], band[1], box is None))
    frame = pd.DataFrame(rows, columns=BOX_COLUMNS)
    _warn_cut(frame, geom, margin)
    return frame


def _warn_cut(frame: pd.DataFrame, geom: TileGeometry, margin: int) -> None:
    """A warning naming the boxes that the tile band cannot hold: rows outside it are lost."""
    cut = [i for i, r0, r1, empty in zip(frame["id"], frame["r0"], frame["r1"], frame["empty"],
                                         strict=True)
           if not empty and band_cuts(int(r0), int(r1), geom, margin)]
    if cut:
        log.warning("%d of %d boxes are taller than the %d-row tile band with their %d-px "
                    "margin, so the band cuts them (e.g. %s): a depth model's map takes its "
                    "low-res map there, any other tile model's 0; if the cars are that tall, "
                    "use larger tiles (`tiles: size`)", len(cut), len(frame), geom.tile,
                    margin, ", ".join(cut[:3]))


def read_bands(csvs: list[str | Path]) -> dict[str, tuple[int, int]]:
    """id -> (band_r0, band_r1) from one or more box CSVs."""
    return _read_rows(csvs, "band_r0", "band_r1")


def read_box_rows(csvs: list[str | Path]) -> dict[str, tuple[int, int]]:
    """id -> (r0, r1), the box's rows (the whole image for an empty map), from box CSVs."""
    return _read_rows(csvs, "r0", "r1")


def _read_rows(csvs: list[str | Path], start: str, end: str) -> dict[str, tuple[int, int]]:
    frame = pd.concat([pd.read_csv(c, dtype={"id": str}) for c in csvs], ignore_index=True)
    return {i: (int(a), int(b)) for i, a, b in
            zip(frame["id"], frame[start], frame[end], strict=True)}


def box_analysis(boxes: pd.DataFrame, data_dir: str | Path, ids: list[str]) -> pd.DataFrame:
    """How the tile band of each (validation) image cuts its true mask."""
    boxes = boxes.set_index("id")
    rows = []
    for image_id in tqdm(ids, desc="box analysis", mininterval=5):
        mask = read_mask(mask_path(data_dir, image_id))
        b = boxes.loc[image_id]
        true = box_from_mask(mask)
        stats = cut_stats(mask, (int(b["band_r0"]), int(b["band_r1"])))
        rows.append({"id": image_id, "r0": b["r0"], "r1": b["r1"], "c0": b["c0"], "c1": b["c1"],
                     "band_r0": b["band_r0"], "band_r1": b["band_r1"], **stats,
                     "box_height": int(b["r1"] - b["r0"]), "box_width": int(b["c1"] - b["c0"]),
                     "true_r0": true.r0 if true else -1, "true_r1": true.r1 if true else -1})
    return pd.DataFrame(rows)
