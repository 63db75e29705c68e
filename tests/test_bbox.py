"""Bounding boxes of masks and low-res maps, tile band placement, and cut statistics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from carvana.bbox import MIN_PART, Box, box_from_mask, box_from_prob, car_box, cut_stats
from carvana.io import write_prob
from carvana.tiling import band_cuts, tile_geometry, tile_rows

FULL = (1918, 1280)  # (width, height)


def test_box_of_rectangle_empty_and_full() -> None:
    mask = np.zeros((50, 70), dtype=np.uint8)
    assert box_from_mask(mask) is None
    mask[10:20, 5:66] = 1
    box = box_from_mask(mask)
    assert box == Box(10, 20, 5, 66)
    assert (box.rows, box.height, box.width) == ((10, 20), 10, 61)
    assert box_from_mask(np.ones((50, 70), dtype=bool)) == Box(0, 50, 0, 70)
    single = np.zeros((5, 5))
    single[4, 0] = 0.5
    assert box_from_mask(single) == Box(4, 5, 0, 1)


def test_box_validation() -> None:
    with pytest.raises(ValueError):
        Box(3, 3, 0, 1)
    with pytest.raises(ValueError):
        Box(-1, 3, 0, 1)
    with pytest.raises(ValueError, match="2-D"):
        box_from_mask(np.zeros((2, 3, 3)))


def test_box_from_prob_identity_and_threshold() -> None:
    prob = np.zeros((128, 128), dtype=np.float32)
    prob[10:20, 30:40] = 0.6
    prob[15, 35] = 0.9
    assert box_from_prob(prob, 0.5, (128, 128)) == Box(10, 20, 30, 40)
    assert box_from_prob(prob, 0.6, (128, 128)) == Box(10, 20, 30, 40)  # >= threshold
    assert box_from_prob(prob, 0.8, (128, 128)) == Box(15, 16, 35, 36)
    assert box_from_prob(prob, 0.95, (128, 128)) is None


def test_the_car_box_leaves_out_specks_far_from_the_car() -> None:
    """The grey compact's case (its map: the car 580,000 px, floor specks 300 rows below, the
    largest 1,855): the box is the car's, and the 960-row band is centred on it."""
    prob = np.zeros((640, 960), np.float32)
    prob[120:446, 200:820] = 0.9  # the car
    prob[600:615, 320:394] = 0.8  # a speck on the floor, 0.5 % of the car
    prob[630:633, 10:12] = 0.7
    assert box_from_mask(prob >= 0.5) == Box(120, 633, 10, 820)  # what the box was
    assert box_from_prob(prob, 0.5, (960, 640)) == Box(120, 446, 200, 820)
    big, full = box_from_prob(prob, 0.5, FULL), Box(240, 892, 399, 1639)
    assert big == full and tile_rows(big.r0, big.r1, tile_geometry(*FULL, tile=960), 16) == (86, 1046)


def test_boxes_taller_than_the_band_are_named_in_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from carvana.bbox import boxes_from_predictions

    for name, rows in (("a_01", (100, 400)), ("b_01", (20, 630))):  # 600 and 1,220 full rows
        prob = np.zeros((64, 96), np.float32)
        prob[rows[0] * 64 // 640:rows[1] * 64 // 640, 10:80] = 1.0
        write_prob(tmp_path / f"{name}.png", prob)
    with caplog.at_level("WARNING", logger="carvana.bbox"):
        frame = boxes_from_predictions(tmp_path, ["a_01", "b_01"], tile_geometry(*FULL, tile=960),
                                       0.5, 16)
    assert frame["band_r1"].sub(frame["band_r0"]).eq(960).all()
    assert "1 of 2 boxes are taller than the 960-row tile band" in caplog.text
    assert "b_01" in caplog.text and "a_01" not in caplog.text


def test_the_car_box_keeps_every_large_part() -> None:
    mask = np.zeros((100, 200), bool)
    mask[20:60, 30:120] = True  # 3,600 px
    mask[70:80, 150:160] = True  # 100 px: 2.8 % of the largest, a wheel cut off by a gap
    assert car_box(mask) == Box(20, 80, 30, 160)
    assert 100 / 3600 >= MIN_PART > 60 / 3600
    mask[70:80, 150:160] = False
    mask[90:96, 150:160] = True  # 60 px: 1.7 %, a speck
    assert car_box(mask) == Box(20, 60, 30, 120)
    assert car_box(mask, min_part=0.0) == Box(20, 96, 30, 160)
    only = np.zeros((5, 5), bool)
    only[4, 0] = True  # one part alone is the car, however small
    assert car_box(only) == Box(4, 5, 0, 1) and car_box(np.zeros((5, 5), bool)) is None
    diagonal = np.eye(6, dtype=bool)  # 8-connected: one part
    assert car_box(diagonal) == Box(0, 6, 0, 6)


def test_box_from_prob_scales_outward() -> None:
    prob = np.zeros((64, 64), dtype=np.float32)
    prob[7:50, 3:61] = 1.0
    box = box_from_prob(prob, 0.5, FULL)
    # rows 7*1280/64 = 140 exactly, 50*1280/64 = 1000 exactly;
    # cols 3*1918/64 = 89.9 -> 89, 61*1918/64 = 1828.1 -> 1829
    assert box == Box(140, 1000, 89, 1829)
    whole = box_from_prob(np.ones((64, 64)), 0.5, FULL)
    assert whole == Box(0, 1280, 0, 1918)


@pytest.mark.parametrize("size", [(64, 64), (256, 256), (37, 53)])
def test_box_from_prob_contains_upsampled_box(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size))
    h, w = size
    for _ in range(20):
        prob = np.zeros((h, w), dtype=np.float32)
        r0, c0 = rng.integers(0, h - 1), rng.integers(0, w - 1)
        r1, c1 = rng.integers(r0 + 1, h + 1), rng.integers(c0 + 1, w + 1)
        prob[r0:r1, c0:c1] = rng.uniform(0.5, 1.0, (r1 - r0, c1 - c0))
        box = box_from_prob(prob, 0.5, FULL)
        assert box is not None
        assert 0 <= box.r0 < box.r1 <= FULL[1] and 0 <= box.c0 < box.c1 <= FULL[0]
        for interp in (cv2.INTER_NEAREST, cv2.INTER_NEAREST_EXACT):
            up = cv2.resize(prob, FULL, interpolation=interp)
            true = box_from_mask(up >= 0.5)
            assert true is not None
            assert box.r0 <= true.r0 and true.r1 <= box.r1, (interp, box, true)
            assert box.c0 <= true.c0 and true.c1 <= box.c1, (interp, box, true)
            # outward rounding adds less than one full-size pixel beyond the low-res pixel edges
            assert true.r0 - box.r0 <= FULL[1] / h + 1 and box.r1 - true.r1 <= FULL[1] / h + 1


GEOM = tile_geometry(1918, 1280, tile=1024)


def test_tile_rows_centred() -> None:
    assert tile_rows(300, 900, GEOM) == (88, 1112)  # 600 rows + 212 on each side
    assert tile_rows(300, 901, GEOM) == (88, 1112)  # odd growth: the extra row goes above
    a, b = tile_rows(128, 1152, GEOM)  # exactly one tile
    assert (a, b) == (128, 1152)


def test_tile_rows_clips_at_edges() -> None:
    assert tile_rows(0, 100, GEOM) == (0, 1024)
    assert tile_rows(10, 700, GEOM) == (0, 1024)
    assert tile_rows(1200, 1280, GEOM) == (256, 1280)
    assert tile_rows(600, 1270, GEOM) == (256, 1280)
    assert tile_rows(0, 1280, GEOM) == (128, 1152)  # taller than the tile: centred, cuts box


def test_tile_rows_margin() -> None:
    assert tile_rows(300, 900, GEOM, margin=50) == tile_rows(250, 950, GEOM)
    # a margin past the top edge is clipped, the band stays inside the image
    assert tile_rows(20, 900, GEOM, margin=40) == (0, 1024)
    # the margin makes the box taller than the tile: centred on the grown box
    assert tile_rows(100, 1100, GEOM, margin=50) == (88, 1112)
    with pytest.raises(ValueError, match="margin"):
        tile_rows(0, 10, GEOM, margin=-1)


def test_tile_rows_box_taller_than_tile() -> None:
    a, b = tile_rows(50, 1250, GEOM)  # 1200 rows: centre 650
    assert (a, b) == (138, 1162)
    mask = np.zeros((1280, 1918), dtype=np.uint8)
    mask[50:1250, 100:1800] = 1
    stats = cut_stats(mask, (a, b))
    assert stats["rows_above"] == 88 and stats["rows_below"] == 88
    assert stats["pixels_outside"] == 176 * 1700
    assert band_cuts(50, 1250, GEOM) and not band_cuts(100, 1124, GEOM)  # 1024 rows fit
    assert band_cuts(100, 1124, GEOM, margin=1) and not band_cuts(0, 1280, tile_geometry(
        1918, 1280, tile=1280))


def test_tile_rows_rejects_bad_box() -> None:
    with pytest.raises(ValueError, match="box rows"):
        tile_rows(500, 400, GEOM)
    with pytest.raises(ValueError, match="box rows"):
        tile_rows(0, 1281, GEOM)


def test_tile_rows_small_geometry_always_contains_box() -> None:
    geom = tile_geometry(97, 65, tile=49)
    for r0 in range(66):
        for r1 in range(r0, 66):
            a, b = tile_rows(r0, r1, geom)
            assert b - a == 49 and 0 <= a < b <= 65
            if r1 - r0 <= 49:
                assert a <= r0 and r1 <= b


def test_cut_stats() -> None:
    mask = np.zeros((20, 10), dtype=np.uint8)
    mask[2:15, 3:5] = 1  # 13 rows x 2 columns
    assert cut_stats(mask, (0, 20)) == {
        "mask_pixels": 26,
        "mask_rows": 13,
        "pixels_outside": 0,
        "rows_above": 0,
        "rows_below": 0,
    }
    stats = cut_stats(mask, (5, 12))
    assert stats["rows_above"] == 3 and stats["rows_below"] == 3
    assert stats["pixels_outside"] == 12
    empty = cut_stats(np.zeros((20, 10)), (5, 12))
    assert set(empty.values()) == {0}
    assert all(type(v) is int for v in stats.values())
    with pytest.raises(ValueError):
        cut_stats(mask, (5, 21))


def _write_preds(pred_dir: Path, probs: dict[str, np.ndarray]) -> None:
    pred_dir.mkdir(parents=True, exist_ok=True)
    for image_id, prob in probs.items():
        write_prob(pred_dir / f"{image_id}.png", prob)


def test_boxes_stage_gate_stops_when_boxes_fall_back(tmp_path: Path) -> None:
    """A box model that sees no car in most images stops the run, naming the share and a fix,
    and writes no box CSV; at or below the allowed share it writes the boxes."""
    from carvana.gates import GateError
    from carvana.io import write_json
    from carvana.stages import boxes_stage

    ids = [f"0123456789ab_{k:02d}" for k in range(1, 5)]
    car = np.zeros((16, 24), np.float32)
    car[4:12, 6:18] = 0.9
    ingest = tmp_path / "ingest.json"
    write_json(ingest, {"width": 96, "height": 64})
    preds = tmp_path / "preds"
    _write_preds(preds, {i: (car if k == 0 else np.zeros_like(car)) for k, i in enumerate(ids)})
    out = tmp_path / "boxes.csv"
    with pytest.raises(GateError, match=r"3 of 4 bounding boxes \(75%\).*bbox.max_fallback"):
        boxes_stage(preds=str(preds), ingest=str(ingest), ids=ids, tiles={"multiple": 16},
                    threshold=0.5, margin=2, max_fallback_fraction=0.5, boxes=str(out))
    assert not out.exists()
    boxes_stage(preds=str(preds), ingest=str(ingest), ids=ids, tiles={"multiple": 16},
                threshold=0.5, margin=2, max_fallback_fraction=0.75, boxes=str(out))
    frame = pd.read_csv(out, dtype={"id": str})
    assert frame["empty"].tolist() == [False, True, True, True]
    assert (frame.loc[0, "r0"], frame.loc[0, "r1"]) == (16, 48)  # rows 4..12 of 16, x4
