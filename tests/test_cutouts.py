"""Cut-outs of a person's own photos: discovery, the in-process chain, the gates, real geometry."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from wfutil import REPO

from carvana import cutouts as cut
from carvana.gates import GateError
from carvana.io import DataError, read_mask, resize_mask
from carvana.models import create_model
from carvana.workflow import deep_merge

# --- discovery and the plan -------------------------------------------------------------------


def _touch_image(path: Path, size: tuple[int, int] = (20, 10)) -> None:
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.new("RGB", size, (200, 30, 30)).save(path, format=fmt)


def test_list_photos_finds_jpeg_and_png_and_skips_other_files(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.v2.jpeg", "Z-9_x.png"]:
        _touch_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a photo")
    _touch_image(tmp_path / ".hidden.jpg")
    (tmp_path / "sub.jpg").mkdir()  # a folder, whatever its name
    photos = cut.list_photos(tmp_path)
    assert list(photos) == ["Z-9_x", "a", "b", "c.v2"]
    assert photos["b"] == str(tmp_path / "b.PNG")


@pytest.mark.parametrize("bad", ["my car.jpg", "-x.png", "_x.jpg", "voiture\u00e9.png"])
def test_list_photos_rejects_unsafe_names(tmp_path: Path, bad: str) -> None:
    _touch_image(tmp_path / "fine.jpg")
    _touch_image(tmp_path / bad)
    with pytest.raises(DataError, match=r"cannot become an output file name.*rename") as err:
        cut.list_photos(tmp_path)
    assert bad in str(err.value)


def test_list_photos_rejects_two_photos_with_one_stem(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a.jpg")
    _touch_image(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"a\.png: has the same name as .*a\.jpg"):
        cut.list_photos(tmp_path)


def test_list_photos_rejects_a_stem_that_would_overwrite_a_mask(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a.jpg")
    _touch_image(tmp_path / "a_mask.png")
    with pytest.raises(DataError, match=r"a_mask\.png: its cut-out a_mask\.png would overwrite"):
        cut.list_photos(tmp_path)


def test_list_photos_errors_on_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        cut.list_photos(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no JPEG or PNG photos"):
        cut.list_photos(tmp_path)


def _config(preset: str | None = None, **override: object) -> dict:
    """A preset as the Snakefile reads it (config.yaml, or the preset file alone), with
    ``override`` merged in as a --config would."""
    path = REPO / "configs" / preset if preset else REPO / "config.yaml"
    return deep_merge(yaml.safe_load(path.read_text()), dict(override))


def test_plan_shards_photos_and_lists_the_chain_models(tmp_path: Path) -> None:
    for name in ["c.jpg", "a.png", "b.jpg"]:
        _touch_image(tmp_path / name)
    config = _config("tiny.yaml", photos_dir=str(tmp_path), cutouts={"shard_size": 2})
    plan = cut.plan(config)
    assert plan.source == "ensemble" and plan.members == {"tiles": 0.5, "unet64": 0.5}
    assert plan.shards == {"0000": ["a", "b"], "0001": ["c"]}
    assert plan.shard_photos("0001") == {"c": str(tmp_path / "c.jpg")}
    assert plan.models == ["unet32", "tiles", "unet64"]  # the box model, then the members
    assert plan.weights()["tiles"] == "results/models/tiles/weights.pt"
    assert plan.threshold == 0.5
    assert "results/cutouts/a_mask.png" in plan.outputs()
    assert "results/cutouts/contact_sheet.jpg" in plan.outputs()
    # a depth model needs the box model and its depth source
    assert cut.chain_models(_config(), "depth") == ["unet128", "depth"]
    assert cut.chain_models(_config(), "unet64") == ["unet64"]
    with pytest.raises(ValueError, match=r"cutouts\.source 'nope'"):
        cut.plan(_config(cutouts={"source": "nope"}))


def test_plan_without_photos_says_how_to_give_them() -> None:
    plan = cut.plan(_config(cutouts={"source": "unet64", "threshold": "best"}))
    assert plan.photos == {} and plan.shards == {} and plan.threshold == "best"
    with pytest.raises(ValueError, match="photos_dir=DIR"):
        plan.require_photos()


def test_resolve_threshold(tmp_path: Path) -> None:
    path = tmp_path / "threshold.json"
    path.write_text(json.dumps({"threshold": 0.55, "best": {"unet64": {"threshold": 0.4},
                                                           "ensemble": {"threshold": 0.55}}}))
    assert cut.resolve_threshold(0.3, None, "unet64") == 0.3
    assert cut.resolve_threshold("best", str(path), "unet64") == 0.4
    with pytest.raises(DataError, match="no best threshold for 'tiles'"):
        cut.resolve_threshold("best", str(path), "tiles")


def test_read_photo_turns_the_photo_upright(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    Image.new("RGB", (60, 40), (10, 200, 10)).save(tmp_path / "r.jpg", exif=exif)
    assert cut.read_photo(tmp_path / "r.jpg").shape == (60, 40, 3)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"broken\.png: cannot decode"):
        cut.read_photo(tmp_path / "broken.png")


# --- the chain on tiny models -----------------------------------------------------------------

def _save(path: Path, model: torch.nn.Module, meta: dict) -> str:
    try:  # the checkpoint writer is moving to its own module
        from carvana.checkpoint import save_checkpoint  # type: ignore[import-not-found]
    except ImportError:
        from carvana.training import save_checkpoint
    save_checkpoint(path, model.state_dict(), meta)
    return str(path)


def _tiny_models(root: Path, bias: float | None = None) -> dict[str, str]:
    """A low-res U-Net on 32x48 inputs and a 4-channel tile model fed by it (48px tiles)."""
    torch.manual_seed(0)
    params = {"initial_filters": 4, "depth": 2, "up_convs": 2}
    low = create_model("unet", in_channels=3, **params)
    tiles = create_model("unet", in_channels=4, **params)
    if bias is not None:  # a model that answers `bias` everywhere
        for m in (low, tiles):
            torch.nn.init.zeros_(m.head.conv.weight)
            torch.nn.init.constant_(m.head.conv.bias, bias)
    return {
        "low": _save(root / "low.pt", low, {"name": "low", "arch": "unet", "in_channels": 3,
                                            "params": params, "input": "lowres", "size": [32, 48]}),
        "tiles": _save(root / "tiles.pt", tiles, {
            "name": "tiles", "arch": "unet", "in_channels": 4, "params": params,
            "input": "tiles", "tile": 48, "depth_from": "low", "init_from": None}),
    }


def _ingest(root: Path, width: int = 96, height: int = 64) -> str:
    path = root / "ingest.json"
    path.write_text(json.dumps({"width": width, "height": height}))
    return str(path)


def _photos(root: Path) -> dict[str, str]:
    """Photos of odd sizes, PNG and JPEG: a bright blob on a darker ground."""
    root.mkdir()
    photos = {}
    for stem, (w, h), ext in [("odd", (101, 67), ".png"), ("j", (150, 77), ".jpg"),
                              ("a-very-long-photo-name-for-the-label", (64, 99), ".png")]:
        yy, xx = np.mgrid[0:h, 0:w]
        blob = ((xx - w / 2) / (w / 3)) ** 2 + ((yy - h / 2) / (h / 4)) ** 2 < 1
        image = np.stack([np.where(blob, 220, 40), np.where(blob, 90, 60), xx * 255 // w], 2)
        Image.fromarray(image.astype(np.uint8)).save(root / f"{stem}{ext}")
        photos[stem] = str(root / f"{stem}{ext}")
    return photos


CHAIN = {"source": "ensemble", "members": {"tiles": 0.5, "low": 0.5},
         "bbox": {"model": "low", "threshold": 0.5, "margin": 2},
         "tiles": {"size": None, "multiple": 16}, "tta_hflip": True, "device": "cpu",
         "cpu_fallback": True}


def test_chain_writes_masks_and_rgba_at_each_photos_size(tmp_path: Path) -> None:
    weights, ingest, photos = _tiny_models(tmp_path), _ingest(tmp_path), _photos(tmp_path / "in")
    chain = cut.build_chain(cut.ChainSpec(weights=weights, **CHAIN), ingest)
    first = chain("odd", cut.resize_image(cut.read_photo(photos["odd"]), chain.size))
    assert first.shape == (64, 96) and first.min() >= 0 and first.max() <= 1
    threshold = float(np.median(first))  # both values in the first mask, whatever the weights
    out = tmp_path / "shard"
    cut.cutouts_shard(photos=photos, spec=cut.ChainSpec(weights=weights, **CHAIN),
                      ingest_json=ingest, threshold=threshold, threshold_json=None,
                      max_empty_fraction=1.0, out_dir=str(out))
    for stem, path in photos.items():
        photo = cut.read_photo(path)
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        rgba = Image.open(out / f"{stem}.png")
        assert mask.dtype == np.uint8 and mask.shape == photo.shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert rgba.mode == "RGBA" and rgba.size == (photo.shape[1], photo.shape[0])
        rgba = np.asarray(rgba)
        assert np.array_equal(rgba[..., 3], mask) and np.array_equal(rgba[..., :3], photo)
        expected = cut.cutout_photo(photo=photo, name=path, prob_fn=chain, size=chain.size,
                                    threshold=threshold)
        assert np.array_equal(mask, expected)
    assert set(np.unique(np.asarray(Image.open(out / "odd_mask.png")))) == {0, 255}
    final = tmp_path / "cutouts"
    cut.collect_cutouts(shard_dirs=[str(out)], stems=list(photos), out_dir=str(final),
                        contact_sheet_jpg=str(final / "contact_sheet.jpg"),
                        summary_csv=str(final / "summary.csv"))
    for stem in photos:
        assert (final / f"{stem}_mask.png").read_bytes() == (out / f"{stem}_mask.png").read_bytes()
    with Image.open(final / "contact_sheet.jpg") as sheet:
        assert sheet.format == "JPEG" and sheet.mode == "RGB"
        sheet.load()
        assert sheet.width >= 2 * 64 and sheet.height >= 2 * 64  # 3 cells: a 2x2 grid
    summary = pd.read_csv(final / "summary.csv")
    assert summary["stem"].tolist() == list(photos)
    assert summary[["width", "height"]].values.tolist() == [[101, 67], [150, 77], [64, 99]]


def test_no_car_warns_per_photo_and_mostly_empty_masks_fail(tmp_path: Path, caplog) -> None:
    weights = _tiny_models(tmp_path, bias=-30.0)  # predicts no car anywhere
    photos = _photos(tmp_path / "in")
    caplog.set_level(logging.WARNING, logger="carvana.cutouts")
    with pytest.raises(GateError, match=r"3 of 3 photos came out with an empty mask") as err:
        spec = cut.ChainSpec(weights={"low": weights["low"], "tiles": weights["tiles"]},
                             **{**CHAIN, "source": "tiles", "members": {}})
        cut.cutouts_shard(photos=photos, spec=spec, ingest_json=_ingest(tmp_path),
                          threshold=0.5, threshold_json=None, max_empty_fraction=0.5,
                          out_dir=str(tmp_path / "shard"))
    assert all(p in str(err.value) for p in photos.values())
    fallbacks = [r.getMessage() for r in caplog.records if "finds no car" in r.getMessage()]
    assert len(fallbacks) == 3 and photos["odd"] in fallbacks[0]
    summary = pd.read_csv(tmp_path / "shard" / "summary.csv")
    assert summary["box_fallback"].all() and summary["empty"].all()


def test_a_few_empty_masks_pass_with_a_warning(tmp_path: Path, caplog) -> None:
    photos = _photos(tmp_path / "in")

    def prob_fn(name: str, image: np.ndarray) -> np.ndarray:
        return np.full(image.shape[:2], 0.0 if name == photos["j"] else 0.9, np.float32)

    frame = cut.run_cutouts(photos=photos, prob_fn=prob_fn, size=(96, 64), threshold=0.5,
                            out_dir=tmp_path / "out")
    assert frame["empty"].tolist() == [False, True, False]
    assert any(photos["j"] in r.getMessage() for r in caplog.records)


# --- geometry end to end on real photos -------------------------------------------------------

def test_real_photos_at_odd_sizes_match_their_true_masks(sample_dir: Path, tmp_path: Path) -> None:
    """The chain with a 'model' that is the true mask: only the geometry can lose Dice."""
    ids = sorted(p.stem for p in (sample_dir / "train").glob("*.jpg"))[::37][:3]
    size = (480, 320)  # the training data's geometry
    sizes = [(1001, 667), (640, 427), (517, 517)]  # the last squashes the aspect
    photos, truth, refs = {}, {}, {}
    for image_id, (w, h) in zip(ids, sizes, strict=True):
        full = np.asarray(Image.open(sample_dir / "train" / f"{image_id}.jpg").convert("RGB"))
        mask = read_mask(sample_dir / "train_masks" / f"{image_id}_mask.gif")
        path = tmp_path / "in" / f"photo_{w}x{h}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(cv2.resize(full, (w, h), interpolation=cv2.INTER_AREA)).save(path)
        photos[path.stem], truth[path.stem] = str(path), mask
        refs[path.stem] = (cv2.resize(full, size, interpolation=cv2.INTER_AREA).astype(np.float32),
                           cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA))

    def true_mask(name: str, image: np.ndarray) -> np.ndarray:
        """Recognise the photo by its pixels (upright, at the data geometry) and return its mask."""
        errors = {s: float(np.mean(np.abs(image.astype(np.float32) - ref)))
                  for s, (ref, _) in refs.items()}
        stem = min(errors, key=errors.get)
        assert errors[stem] < 6, f"{name}: no reference photo looks like it ({errors})"
        return refs[stem][1]

    out = tmp_path / "out"
    cut.run_cutouts(photos=photos, prob_fn=true_mask, size=size, threshold=0.5, out_dir=out)
    for stem, path in photos.items():
        mask = np.asarray(Image.open(out / f"{stem}_mask.png")) > 0
        w, h = Image.open(path).size
        assert mask.shape == (h, w)
        expected = resize_mask(truth[stem], (w, h)) > 0
        dice = 2 * np.sum(mask & expected) / (mask.sum() + expected.sum())
        assert dice > 0.98, f"{stem}: Dice {dice:.4f}"
