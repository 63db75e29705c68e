"""The full-resolution branch: boxes from predictions, tile datasets, stitched prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from carvana.bbox import boxes_from_predictions, read_bands, read_box_rows
from carvana.ensemble import ensemble_to_dir
from carvana.fullres import TileDataset, collate_tiles, depth_fill, stitch_writer
from carvana.io import read_image, read_prob, write_prob
from carvana.predict import predict_to_dir
from carvana.stages import thresholds_stage
from carvana.tiling import tile_geometry


def _ids(data: Path) -> list[str]:
    return sorted(p.stem for p in (data / "train").glob("*.jpg"))


def test_boxes_from_predictions(tmp_path: Path) -> None:
    geom = tile_geometry(96, 64, multiple=16)  # tile 48
    prob = np.zeros((32, 32), np.float32)
    prob[8:16, 4:28] = 0.9  # rows 16..32 at full size, columns 12..84
    write_prob(tmp_path / "0123456789ab_01.png", prob)
    write_prob(tmp_path / "0123456789ab_02.png", np.zeros((32, 32), np.float32))
    frame = boxes_from_predictions(tmp_path, ["0123456789ab_01", "0123456789ab_02"], geom, 0.5, 2)
    first, empty = frame.iloc[0], frame.iloc[1]
    assert (first["r0"], first["r1"], first["c0"], first["c1"]) == (16, 32, 12, 84)
    assert first["band_r1"] - first["band_r0"] == 48
    assert first["band_r0"] <= 14 and first["band_r1"] >= 34  # box plus margin inside the band
    assert not first["empty"] and empty["empty"]
    assert (empty["band_r0"], empty["band_r1"]) == (8, 56)  # centred on the image


def test_tile_dataset_depth_channel_is_aligned(tiny_data, tmp_path: Path) -> None:
    data = tiny_data[0]
    ids = _ids(data)[:2]
    geom = tile_geometry(96, 64, multiple=16)
    # a "low-res prediction" that is the image's own red channel at 32x32
    for image_id in ids:
        red = read_image(data / "train" / f"{image_id}.jpg")[..., 0].astype(np.float32) / 255
        write_prob(tmp_path / f"{image_id}.png", red)
    bands = {i: (8, 56) for i in ids}
    ds = TileDataset(data, "train", ids, bands, geom, with_masks=True, depth_dir=tmp_path)
    item = ds[0]
    assert item["image"].shape == (2, 4, 48, 48)
    assert item["mask"].shape == (2, 1, 48, 48)
    tiles = item["image"].numpy()
    # channel 4 equals channel 1 (red) in both tiles, mirrored right tile included
    assert np.abs(tiles[:, 3].astype(int) - tiles[:, 0].astype(int)).max() <= 1
    batch = collate_tiles([ds[0], ds[1]])
    assert batch["image"].shape == (4, 4, 48, 48) and batch["id"][:2] == [ids[0], ids[0]]
    with pytest.raises(ValueError, match="no bounding box band"):
        TileDataset(data, "train", ids, {}, geom)


class _Echo(torch.nn.Module):
    """A 'model' whose logits make sigmoid(logit) equal the first input channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x[:, :1].clamp(1e-4, 1 - 1e-4)
        return torch.log(p / (1 - p))


def test_predict_tiles_stitches_back_to_full_size(tiny_data, tmp_path: Path) -> None:
    data = tiny_data[0]
    ids = _ids(data)[:3]
    geom = tile_geometry(96, 64, multiple=16)
    bands = {i: (10, 58) for i in ids}
    ds = TileDataset(data, "train", ids, bands, geom, with_masks=False)
    stats = predict_to_dir(_Echo(), ds, tmp_path, torch.device("cpu"), batch_size=2,
                           collate_fn=collate_tiles, write=stitch_writer(bands, geom))
    assert stats["images"] == 3  # images, not tiles: batches of 2 + 1 images (4 + 2 tiles)
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == ids
    for image_id in ids:
        out = read_prob(tmp_path / f"{image_id}.png")
        red = read_image(data / "train" / f"{image_id}.jpg")[..., 0] / 255.0
        assert out.shape == (64, 96)
        assert np.abs(out[10:58] - red[10:58]).max() <= 1.5 / 255
        assert not out[:10].any() and not out[58:].any()


def test_a_depth_models_cut_rows_take_its_low_res_map(tmp_path: Path) -> None:
    """A box of rows 2-62 is taller than the 48-row band 8-56: the stitched map's rows 2-8 and
    56-62 take the depth folder's map (0.7), rows outside the box stay 0; a box inside the
    band leaves the map as stitched. The box rows come from the boxes CSV."""
    geom = tile_geometry(96, 64, multiple=16)
    depth = tmp_path / "depth"
    depth.mkdir()
    for name in ("0123456789ab_01", "0123456789ab_02"):
        write_prob(depth / f"{name}.png", np.full((32, 48), 0.7, np.float32))
    pd.DataFrame({"id": ["0123456789ab_01", "0123456789ab_02"], "r0": [2, 20], "r1": [62, 40],
                  "c0": [0, 0], "c1": [96, 96], "band_r0": [8, 8], "band_r1": [56, 56],
                  "empty": [False, False]}).to_csv(tmp_path / "boxes.csv", index=False)
    bands, boxes = read_bands([tmp_path / "boxes.csv"]), read_box_rows([tmp_path / "boxes.csv"])
    assert boxes == {"0123456789ab_01": (2, 62), "0123456789ab_02": (20, 40)}
    write = stitch_writer(bands, geom, depth_fill(depth, bands, boxes, geom))
    probs = np.full((2, 48, 48), 0.25, np.float32)
    for name in bands:
        assert write(tmp_path, [name] * 2, probs) == 1
    cut = read_prob(tmp_path / "0123456789ab_01.png")
    assert np.allclose(cut[2:8], 0.7, atol=1 / 255) and np.allclose(cut[56:62], 0.7, atol=1 / 255)
    assert np.allclose(cut[8:56], 0.25, atol=1 / 255)
    assert not cut[:2].any() and not cut[62:].any()
    held = read_prob(tmp_path / "0123456789ab_02.png")
    assert not held[:8].any() and not held[56:].any() and np.allclose(held[8:56], 0.25, atol=1 / 255)


def test_stitch_writer_refuses_unpaired_tiles(tmp_path: Path) -> None:
    geom = tile_geometry(96, 64, multiple=16)
    write = stitch_writer({"0123456789ab_01": (8, 56)}, geom)
    probs = np.full((2, 48, 48), 0.5, np.float32)
    with pytest.raises(ValueError, match="collate_fn=collate_tiles"):
        write(tmp_path, ["0123456789ab_01", "0123456789ab_02"], probs)
    with pytest.raises(ValueError, match="not pairs"):
        write(tmp_path, ["0123456789ab_01"], probs[:1])
    assert write(tmp_path, ["0123456789ab_01"] * 2, probs) == 1
    assert read_prob(tmp_path / "0123456789ab_01.png").shape == (64, 96)


def test_ensemble_weighted_average(tmp_path: Path) -> None:
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    write_prob(a / "0123456789ab_01.png", np.full((8, 8), 0.2, np.float32))  # low res: resized
    write_prob(b / "0123456789ab_01.png", np.full((16, 24), 1.0, np.float32))
    ensemble_to_dir({"a": (a, 3.0), "b": (b, 1.0)}, ["0123456789ab_01"], (24, 16), out)
    got = read_prob(out / "0123456789ab_01.png")
    assert got.shape == (16, 24)
    assert np.allclose(got, 0.75 * 0.2 + 0.25 * 1.0, atol=1 / 255)


def test_read_bands(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["0123456789ab_01"], "band_r0": [3], "band_r1": [51]}).to_csv(
        tmp_path / "b.csv", index=False)
    assert read_bands([tmp_path / "b.csv"]) == {"0123456789ab_01": (3, 51)}


def test_thresholds_stage_fixed_or_best(tmp_path: Path) -> None:
    curve = pd.DataFrame({"threshold": [0.3, 0.4, 0.5, 0.6], "dice": [0.90, 0.95, 0.93, 0.80]})
    curve.to_csv(tmp_path / "a.csv", index=False)
    for setting, out in (("best", "best.json"), (0.5, "fixed.json")):
        thresholds_stage(curves=[str(tmp_path / "a.csv")], models=["a"], setting=setting,
                         source="a", choice=str(tmp_path / out))
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["threshold"] == 0.4 and best["best"]["a"]["dice"] == 0.95
    assert best["best"]["a"]["dice_at_0.5"] == 0.93
    assert json.loads((tmp_path / "fixed.json").read_text())["threshold"] == 0.5


def test_random_crops_cut_image_and_mask_alike_and_reproducibly() -> None:
    """Each tile gets its own window; image and mask are cut at the same place; the same seed
    draws the same windows; a crop larger than the tile is an error."""
    from carvana.fullres import RandomCrops

    tile = 32
    ramp = torch.arange(tile * tile, dtype=torch.int32).reshape(1, tile, tile)
    base = [{"id": "x", "image": torch.stack([ramp, ramp + 5000]).repeat(1, 3, 1, 1),
             "mask": torch.stack([ramp, ramp + 5000])}]
    crops = RandomCrops(base, 8)
    torch.manual_seed(0)
    item = crops[0]
    assert item["image"].shape == (2, 3, 8, 8) and item["mask"].shape == (2, 1, 8, 8)
    for k in range(2):
        assert torch.equal(item["image"][k, 0], item["mask"][k, 0])
        top_left = int(item["mask"][k, 0, 0, 0]) - 5000 * k
        y, x = divmod(top_left, tile)
        assert torch.equal(item["mask"][k, 0], base[0]["mask"][k, 0, y:y + 8, x:x + 8])
    torch.manual_seed(0)
    assert torch.equal(crops[0]["image"], item["image"])
    with pytest.raises(ValueError, match="crop 64 is larger than the 32px tiles"):
        RandomCrops(base, 64)[0]


def test_edge_crops_hold_the_outline_and_fall_back_when_there_is_none() -> None:
    """With ``edge=1`` every window holds car and background (the outline), even where the car
    meets the tile's border; uniform windows of the same tile miss it most of the time; a tile
    without an outline gets a uniform window; the same seed draws the same windows."""
    from carvana.fullres import RandomCrops

    tile, crop = 128, 16
    mask = torch.zeros(2, 1, tile, tile, dtype=torch.uint8)
    mask[0, 0, :6, :] = 1  # a car along the top border: its outline is row 6
    ramp = torch.arange(tile * tile, dtype=torch.int32).reshape(tile, tile)
    image = torch.stack([mask[0].int().repeat(3, 1, 1), ramp.repeat(3, 1, 1)])
    base = [{"id": "x", "image": image, "mask": mask}]  # tile 1: no car, a ramp image

    def both_classes(crops: RandomCrops, draws: int) -> float:
        hits = 0
        for _ in range(draws):
            window = crops[0]["mask"][0]
            hits += int(window.min() == 0 and window.max() == 1)
        return hits / draws

    torch.manual_seed(0)
    assert both_classes(RandomCrops(base, crop, edge=1.0), 200) == 1.0
    assert both_classes(RandomCrops(base, crop, edge=0.0), 200) < 0.3
    torch.manual_seed(1)
    first = RandomCrops(base, crop, edge=1.0)[0]
    assert first["image"].shape == (2, 3, crop, crop)
    # tile 1 has no outline: its windows are uniform, their top-left corners spread over the
    # tile (the ramp's value there says where each window starts)
    corners = [divmod(int(RandomCrops(base, crop, edge=1.0)[0]["image"][1, 0, 0, 0]), tile)
               for _ in range(100)]
    rows, cols = zip(*corners, strict=True)
    assert min(rows) < 20 and max(rows) > tile - crop - 20 and len(set(corners)) > 90
    assert min(cols) < 20 and max(cols) > tile - crop - 20
    torch.manual_seed(1)
    assert torch.equal(RandomCrops(base, crop, edge=1.0)[0]["image"], first["image"])
    with pytest.raises(ValueError, match="crop_edge is a fraction"):
        RandomCrops(base, crop, edge=1.5)


def test_lower_edge_crops_hold_the_cars_underside_only() -> None:
    """With ``lower=1`` every outline-centred window holds the car's lower edge (car above,
    background below) and never its upper edge; with ``lower=0`` the two edges and the sides
    share the windows; a fraction outside [0, 1] is an error naming the key."""
    from carvana.fullres import RandomCrops

    tile, crop = 128, 16
    mask = torch.zeros(2, 1, tile, tile, dtype=torch.uint8)
    mask[:, 0, 40:80, 10:118] = 1  # a wide car: upper edge row 40, lower edge row 80
    row = torch.arange(tile, dtype=torch.int32)[:, None].expand(tile, tile)
    image = row.repeat(2, 3, 1, 1)  # each pixel's value is its row
    base = [{"id": "x", "image": image, "mask": mask}]

    def edges_seen(lower: float, draws: int = 100) -> tuple[int, int]:
        top = bottom = 0
        for _ in range(draws):
            item = RandomCrops(base, crop, edge=1.0, lower=lower)[0]
            for rows, window in zip(item["image"][:, 0, :, 0], item["mask"][:, 0], strict=True):
                top += int(rows[0] <= 40 <= rows[-1] and window.max() == 1)
                bottom += int(rows[0] <= 80 <= rows[-1] and window.max() == 1)
        return top, bottom

    torch.manual_seed(0)
    top, bottom = edges_seen(lower=1.0)
    assert top == 0 and bottom == 200
    top, bottom = edges_seen(lower=0.0)
    assert 40 < top < 120 and 40 < bottom < 120
    with pytest.raises(ValueError, match="crop_edge_lower is a fraction"):
        RandomCrops(base, crop, edge=1.0, lower=-0.1)


def test_crops_without_the_lower_option_draw_the_windows_of_older_runs() -> None:
    """``crop_edge_lower: 0`` (every preset) draws nothing more from torch's RNG: a seeded run
    crops the windows it cropped before the option existed (pinned from 7a5df28's code), so
    the presets' models keep their bytes. Drawing the option's coin always moved them."""
    from carvana.fullres import RandomCrops

    tile, crop = 128, 16
    mask = torch.zeros(2, 1, tile, tile, dtype=torch.uint8)
    mask[:, 0, 40:80, 10:118] = 1
    ramp = torch.arange(tile * tile, dtype=torch.int32).reshape(tile, tile)
    base = [{"id": "x", "image": ramp.repeat(2, 3, 1, 1), "mask": mask}]
    torch.manual_seed(5)
    corners = [divmod(int(v), tile) for _ in range(6)
               for v in RandomCrops(base, crop, edge=0.5)[0]["image"][:, 0, 0, 0]]
    assert corners == [(91, 106), (30, 46), (20, 40), (19, 109), (71, 56), (112, 58),
                       (30, 40), (6, 20), (101, 10), (97, 15), (111, 75), (70, 30)]
