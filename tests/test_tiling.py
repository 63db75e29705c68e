"""Tile geometry, cutting and stitching (synthetic arrays and the real sample masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from carvana.bbox import box_from_mask, cut_stats
from carvana.io import read_mask
from carvana.tiling import (
    TileGeometry,
    cut_tiles,
    fill_box_rows,
    stitch,
    tile_geometry,
    tile_rows,
)

SAMPLE_MASKS = Path("/work/shared/carvana-sample/train_masks")


def test_carvana_full_geometry() -> None:
    geom = tile_geometry(1918, 1280, tile=1024)
    assert geom.left_cols == (0, 1024)
    assert geom.right_cols == (894, 1918)
    assert geom.overlap == 130


def test_derived_tile_for_carvana() -> None:
    geom = tile_geometry(1918, 1280)
    assert (geom.tile, geom.overlap) == (960, 2)
    assert tile_geometry(1918, 1280, min_overlap=100).tile == 1024
    assert tile_geometry(1918, 1280, multiple=1).tile == 959


@pytest.mark.parametrize(
    ("width", "height", "multiple", "tile"),
    [(481, 321, 32, 256), (97, 65, 32, 64), (97, 65, 1, 49), (481, 321, 1, 241), (5, 3, 1, 3)],
)
def test_derived_tile_small_odd(width: int, height: int, multiple: int, tile: int) -> None:
    geom = tile_geometry(width, height, multiple=multiple)
    assert geom.tile == tile
    assert geom.tile % multiple == 0
    assert geom.overlap == 2 * tile - width >= 0
    assert geom.right_cols == (width - tile, width)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 1918, "height": 1280, "tile": 1300}, "taller"),
        ({"width": 500, "height": 600, "tile": 520}, "wider"),
        ({"width": 1918, "height": 1280, "tile": 958}, "cannot cover"),
        ({"width": 1918, "height": 900}, "no tile"),
        ({"width": 97, "height": 60, "multiple": 32}, "no tile"),
        ({"width": 1918, "height": 1280, "tile": 960, "min_overlap": 10}, "min_overlap"),
        ({"width": 1918, "height": 1280, "multiple": 0}, "multiple"),
    ],
)
def test_impossible_geometry(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tile_geometry(**kwargs)


def test_geometry_dataclass_validates() -> None:
    with pytest.raises(ValueError, match="cannot cover"):
        TileGeometry(width=100, height=100, tile=40)


@pytest.mark.parametrize(
    ("width", "height", "tile", "r0", "r1"),
    [
        (1918, 1280, 1024, 200, 1000),
        (1918, 1280, 960, 0, 5),
        (481, 321, 256, 100, 200),
        (97, 65, 49, 60, 65),
        (97, 65, 64, 0, 65),
        (8, 8, 8, 2, 3),
    ],
)
def test_cut_then_stitch_is_identity_on_band(
    width: int, height: int, tile: int, r0: int, r1: int
) -> None:
    geom = tile_geometry(width, height, tile=tile)
    rows = tile_rows(r0, r1, geom)
    image = np.random.default_rng(width).random((height, width), dtype=np.float32)
    tiles = cut_tiles(image, rows, geom)
    assert tiles.shape == (2, tile, tile)
    assert tiles.dtype == image.dtype
    out = stitch(tiles, rows, geom)
    assert out.shape == (height, width)
    assert out.dtype == np.float32
    a, b = rows
    np.testing.assert_array_equal(out[a:b], image[a:b])
    assert not out[:a].any() and not out[b:].any()


def test_cut_then_stitch_with_channels() -> None:
    geom = tile_geometry(97, 65, tile=64)
    image = np.random.default_rng(0).integers(0, 256, (65, 97, 3), dtype=np.uint8)
    rows = (1, 65)
    tiles = cut_tiles(image, rows, geom)
    assert tiles.shape == (2, 64, 64, 3) and tiles.dtype == np.uint8
    out = stitch(tiles, rows, geom)
    assert out.shape == (65, 97, 3)
    np.testing.assert_array_equal(out[1:], image[1:].astype(np.float32))
    assert not out[0].any()


def test_right_tile_is_mirrored() -> None:
    geom = tile_geometry(10, 6, tile=6)  # left cols 0..5, right cols 4..9, overlap 2
    image = np.tile(np.arange(10, dtype=np.float32), (6, 1)) + 100 * np.arange(6)[:, None]
    tiles = cut_tiles(image, (0, 6), geom)
    np.testing.assert_array_equal(tiles[0, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(tiles[1, 0], [9, 8, 7, 6, 5, 4])  # image's right edge first
    np.testing.assert_array_equal(tiles[1, :, 0], image[:, 9])  # rows are not flipped


def test_overlap_is_averaged() -> None:
    geom = tile_geometry(1918, 1280, tile=1024)
    rows = (100, 1124)
    tiles = np.stack([np.full((1024, 1024), 1.0), np.full((1024, 1024), 3.0)])
    out = stitch(tiles, rows, geom)
    band = out[100:1124]
    assert (band[:, :894] == 1).all()
    assert (band[:, 894:1024] == 2).all()
    assert (band[:, 1024:] == 3).all()
    assert not out[:100].any() and not out[1124:].any()


def test_stitch_unmirrors_a_ramp() -> None:
    geom = tile_geometry(10, 6, tile=6)
    tiles = np.zeros((2, 6, 6), dtype=np.float32)
    tiles[1] = np.arange(6)  # right tile column k is full-image column 9 - k
    out = stitch(tiles, (0, 6), geom)
    np.testing.assert_array_equal(out[0, 6:], [3, 2, 1, 0])  # columns 6..9
    np.testing.assert_array_equal(out[0, 4:6], [5 / 2, 4 / 2])  # overlap, left tile is 0


def test_shape_errors() -> None:
    geom = tile_geometry(97, 65, tile=64)
    with pytest.raises(ValueError, match="height, width"):
        cut_tiles(np.zeros((64, 97)), (0, 64), geom)
    with pytest.raises(ValueError, match="64 rows"):
        cut_tiles(np.zeros((65, 97)), (0, 63), geom)
    with pytest.raises(ValueError, match="64 rows"):
        cut_tiles(np.zeros((65, 97)), (2, 66), geom)
    with pytest.raises(ValueError, match=r"\(2, 64, 64\)"):
        stitch(np.zeros((2, 64, 63)), (0, 64), geom)


def _sample_masks() -> list[Path]:
    if not SAMPLE_MASKS.is_dir():
        pytest.skip(f"{SAMPLE_MASKS} is absent")
    paths = sorted(SAMPLE_MASKS.glob("*_mask.gif"))
    if not paths:
        pytest.skip(f"no masks in {SAMPLE_MASKS}")
    return paths


def test_real_masks_fit_the_band_and_round_trip() -> None:
    paths = _sample_masks()
    geom = tile_geometry(1918, 1280, tile=1024)
    for path in paths:
        mask = read_mask(path)
        assert mask.shape == (1280, 1918), path.name
        box = box_from_mask(mask)
        assert box is not None, path.name
        rows = tile_rows(box.r0, box.r1, geom)
        stats = cut_stats(mask, rows)
        assert stats["pixels_outside"] == 0, (path.name, stats)
        assert stats["rows_above"] == stats["rows_below"] == 0, (path.name, stats)
        # rows holding mask pixels: the whole box height, less any empty row inside it (a gap
        # between the body and an antenna, say; seen on 0795e132d090_02)
        assert 0.95 * box.height <= stats["mask_rows"] <= box.height, path.name
        out = stitch(cut_tiles(mask, rows, geom), rows, geom)
        np.testing.assert_array_equal(out, mask, err_msg=path.name)


def test_fill_box_rows_mends_only_the_boxs_rows_the_band_cut() -> None:
    full = np.zeros((10, 4), np.float32)
    full[3:7] = 0.5  # the band: rows 3-7
    prior = np.full((10, 4), 0.9, np.float32)
    out = fill_box_rows(full, prior, (3, 7), (1, 9))
    assert out[1:3].tolist() == prior[1:3].tolist() and out[7:9].tolist() == prior[7:9].tolist()
    assert (out[3:7] == 0.5).all() and not out[0].any() and not out[9].any()
    assert not full[1:3].any()  # a copy: the stitched map is not changed in place
    assert fill_box_rows(full, prior, (3, 7), (4, 6)) is full  # the band holds the box
    below = fill_box_rows(full, prior, (3, 7), (5, 10))  # cut below only
    assert (below[7:] == 0.9).all() and not below[:3].any()
    with pytest.raises(ValueError, match="differ in shape"):
        fill_box_rows(full, prior[:5], (3, 7), (1, 9))
