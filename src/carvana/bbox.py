"""Bounding boxes of masks and low-resolution predictions, and how a tile band cuts a true mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def box_from_prob(prob: np.ndarray, threshold: float, full_size: tuple[int, int]) -> Box | None:
    """Box of ``prob >= threshold`` on a low-res (h, w) map, scaled to ``full_size`` (width, height).

    The map covers the whole image (squashed; the aspect need not match). Low-res pixel ``i``
    spans full rows ``[i * H / h, (i + 1) * H / h)``; starts are floored and ends ceiled (exact
    integer arithmetic), so scaling never shrinks the box. None if no pixel reaches the threshold.
    """
    _check_2d(prob, "probability map")
    width, height = full_size
    low = box_from_mask(prob >= threshold)
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
