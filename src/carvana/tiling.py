"""Two overlapping square tiles on a band of rows: cut an image into them, stitch predictions back.

The band is ``geom.tile`` rows tall (chosen from the car's bounding box, see ``tile_rows``). The
left tile covers columns ``[0, tile)``; the right tile covers ``[width - tile, width)`` and is
MIRRORED left-right, so both tiles show the car's outer edge on the same side. ``stitch`` undoes
the mirror, keeps each tile's own part, averages the overlap and leaves zeros outside the band.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carvana.io import read_json


@dataclass(frozen=True)
class TileGeometry:
    """Full image size (``width`` x ``height``) and the side of the two square tiles."""

    width: int
    height: int
    tile: int

    def __post_init__(self) -> None:
        _check_geometry(self.width, self.height, self.tile)

    @property
    def left_cols(self) -> tuple[int, int]:
        """Half-open columns ``[0, tile)`` of the left tile."""
        return 0, self.tile

    @property
    def right_cols(self) -> tuple[int, int]:
        """Half-open columns ``[width - tile, width)`` of the right tile."""
        return self.width - self.tile, self.width

    @property
    def overlap(self) -> int:
        """Number of columns both tiles cover: ``2 * tile - width``."""
        return 2 * self.tile - self.width


def _check_geometry(width: int, height: int, tile: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if tile < 1:
        raise ValueError(f"tile side must be positive, got {tile}")
    if tile > height:
        raise ValueError(f"tile {tile} is taller than the image ({width}x{height})")
    if tile > width:
        raise ValueError(f"tile {tile} is wider than the image ({width}x{height})")
    if 2 * tile < width:
        raise ValueError(
            f"two tiles of {tile} cannot cover a width of {width}: need tile >= {(width + 1) // 2}"
        )


def tile_geometry(
    width: int, height: int, tile: int | None = None, multiple: int = 32, min_overlap: int = 0
) -> TileGeometry:
    """Geometry for a ``width`` x ``height`` image; derive ``tile`` when it is None.

    The derived tile is the smallest multiple of ``multiple`` with ``2 * tile - width >=
    min_overlap`` and ``tile <= height`` (1918x1280, multiple 32: 960, overlap 2; the original
    solution used tile=1024, overlap 130). Raise ValueError if no tile fits, if an explicit tile is
    taller or wider than the image, leaves a gap (``2 * tile < width``) or overlaps by less than
    ``min_overlap``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be positive, got {multiple}")
    if min_overlap < 0:
        raise ValueError(f"min_overlap must be >= 0, got {min_overlap}")
    if tile is None:
        need = -(-(width + min_overlap) // 2)  # ceil((width + min_overlap) / 2)
        tile = -(-need // multiple) * multiple
        if tile > height or tile > width:
            raise ValueError(
                f"no tile (multiple of {multiple}) fits a {width}x{height} image with an overlap "
                f">= {min_overlap}: it would need {tile}, more than min(width, height) = "
                f"{min(width, height)}"
            )
    geom = TileGeometry(width=width, height=height, tile=tile)
    if geom.overlap < min_overlap:
        raise ValueError(
            f"tile {tile} on width {width} overlaps by {geom.overlap} columns, "
            f"less than min_overlap={min_overlap}"
        )
    return geom


def tile_rows(r0: int, r1: int, geom: TileGeometry, margin: int = 0) -> tuple[int, int]:
    """Rows ``(a, a + tile)`` of the tile band for the box rows ``[r0, r1)``.

    The box is grown by ``margin`` on both sides (clipped to the image), then grown symmetrically
    to exactly ``geom.tile`` rows and shifted to stay inside ``[0, height)``. When the box is
    taller than the tile the band is centred on it and cuts it (``bbox.cut_stats`` measures that).
    """
    if not 0 <= r0 <= r1 <= geom.height:
        raise ValueError(f"box rows [{r0}, {r1}) must satisfy 0 <= r0 <= r1 <= {geom.height}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    lo, hi = max(r0 - margin, 0), min(r1 + margin, geom.height)
    a = (lo + hi - geom.tile) // 2  # centre the band on the (grown) box
    a = min(max(a, 0), geom.height - geom.tile)
    return a, a + geom.tile


def band_cuts(r0: int, r1: int, geom: TileGeometry, margin: int = 0) -> bool:
    """True when the box rows ``[r0, r1)`` grown by ``margin`` are taller than the tile, so
    that :func:`tile_rows`' band cuts them."""
    return min(r1 + margin, geom.height) - max(r0 - margin, 0) > geom.tile


def _check_rows(rows: tuple[int, int], geom: TileGeometry) -> tuple[int, int]:
    a, b = (int(r) for r in rows)
    if b - a != geom.tile or a < 0 or b > geom.height:
        raise ValueError(
            f"rows {rows} must be {geom.tile} rows inside [0, {geom.height}) (see tile_rows)"
        )
    return a, b


def cut_tiles(image: np.ndarray, rows: tuple[int, int], geom: TileGeometry) -> np.ndarray:
    """Cut an (H, W) or (H, W, C...) array into ``(2, tile, tile, C...)``: left, mirrored right."""
    if image.shape[:2] != (geom.height, geom.width):
        raise ValueError(
            f"image shape {image.shape} does not start with (height, width) = "
            f"({geom.height}, {geom.width})"
        )
    a, b = _check_rows(rows, geom)
    band = image[a:b]
    left = band[:, slice(*geom.left_cols)]
    right = band[:, slice(*geom.right_cols)][:, ::-1]
    return np.stack([left, right])


def stitch(tiles: np.ndarray, rows: tuple[int, int], geom: TileGeometry) -> np.ndarray:
    """Inverse of ``cut_tiles``: ``(2, tile, tile, C...)`` -> float32 ``(height, width, C...)``.

    The right tile is un-mirrored, each tile fills its own columns, the overlap is the average of
    the two and rows outside the band are zero.
    """
    t = geom.tile
    if tiles.shape[:3] != (2, t, t):
        raise ValueError(f"tiles shape {tiles.shape} does not start with (2, {t}, {t})")
    a, b = _check_rows(rows, geom)
    left = np.asarray(tiles[0], dtype=np.float32)
    right = np.asarray(tiles[1], dtype=np.float32)[:, ::-1]
    out = np.zeros((geom.height, geom.width, *tiles.shape[3:]), dtype=np.float32)
    c = geom.right_cols[0]  # first column of the right tile; the overlap is [c, t)
    out[a:b, :c] = left[:, :c]
    out[a:b, t:] = right[:, t - c :]
    out[a:b, c:t] = (left[:, c:] + right[:, : t - c]) * np.float32(0.5)
    return out


def box_outside_band(rows: tuple[int, int], box_rows: tuple[int, int]) -> bool:
    """True when some of the box's rows ``box_rows`` lie outside the band ``rows``."""
    return box_rows[0] < rows[0] or box_rows[1] > rows[1]


def fill_box_rows(full: np.ndarray, prior: np.ndarray, rows: tuple[int, int],
                  box_rows: tuple[int, int]) -> np.ndarray:
    """A stitched map whose rows of the box ``box_rows`` that the band ``rows`` left out (a box
    taller than the tile: :func:`band_cuts`) take ``prior``'s values instead of 0. Rows
    outside the box stay 0; a box the band holds leaves the map as it is."""
    if full.shape != prior.shape:
        raise ValueError(f"map {full.shape} and prior {prior.shape} differ in shape")
    (a, b), (r0, r1) = rows, box_rows
    if not box_outside_band(rows, box_rows):
        return full
    out = full.copy()
    out[r0:a] = prior[r0:a]
    out[max(b, r0):r1] = prior[max(b, r0):r1]
    return out


def geometry(ingest_json: str | Path, tiles: dict[str, Any]) -> TileGeometry:
    """Tile geometry for the data's image size (from ingest.json) and config `tiles:`."""
    info = read_json(ingest_json)
    return tile_geometry(info["width"], info["height"], tiles.get("size"),
                         tiles.get("multiple", 32), tiles.get("min_overlap", 0))
