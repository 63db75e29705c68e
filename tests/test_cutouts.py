"""Cut-outs of a person's own photos: discovery, the in-process chain, the gates, real geometry."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from test_segmenter import make_results, photo
from wfutil import REPO

from carvana import cutouts as cut
from carvana.chain import Chain, ChainModel
from carvana.gates import GateError
from carvana.io import DataError, read_mask, resize_mask
from carvana.photos import read_photo
from carvana.segmenter import Segmenter
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


@pytest.mark.parametrize("name", ["my car.jpg", "-x.png", "_x.jpg", "voiture\u00e9.png",
                                  "IMG 2031 (1).jpg", "a{b}.jpg", "x.v2.final.jpeg"])
def test_list_photos_accepts_any_name(tmp_path: Path, name: str) -> None:
    _touch_image(tmp_path / "fine.jpg")
    _touch_image(tmp_path / name)
    photos = cut.list_photos(tmp_path)
    assert photos[Path(name).stem] == str(tmp_path / name) and len(photos) == 2


def test_the_rule_refuses_braces_and_says_what_takes_them(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a{b}.jpg")
    assert list(cut.list_photos(tmp_path)) == ["a{b}"]  # carvana-cutout takes it
    with pytest.raises(DataError, match=r"a\{b\}\.jpg: .*'\{' or '\}'.*carvana-cutout DIR"):
        cut.plan(_config("tiny.yaml", photos_dir=str(tmp_path)))


def test_list_photos_rejects_two_photos_with_one_stem(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a.jpg")
    _touch_image(tmp_path / "a.png")
    with pytest.raises(DataError, match=r"a\.png and .*a\.jpg would both write a\.png"):
        cut.list_photos(tmp_path)


def test_list_photos_rejects_a_stem_that_would_overwrite_a_mask(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a.jpg")
    _touch_image(tmp_path / "a_mask.png")
    with pytest.raises(DataError, match=r"a_mask\.png and .*a\.jpg would both write a_mask\.png"):
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
    assert plan.source == "ensemble"
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


def test_read_photo_turns_the_photo_upright(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    Image.new("RGB", (60, 40), (10, 200, 10)).save(tmp_path / "r.jpg", exif=exif)
    assert read_photo(tmp_path / "r.jpg").shape == (60, 40, 3)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"broken\.png: not a readable JPEG or PNG"):
        read_photo(tmp_path / "broken.png")


# --- the shard stage on tiny models -----------------------------------------------------------

def _photos(root: Path) -> dict[str, str]:
    """Photos of odd sizes and odd names, PNG and JPEG: a bright blob on a darker ground."""
    root.mkdir()
    photos = {}
    for stem, (w, h), ext in [("odd (1)", (101, 67), ".png"), ("j", (150, 77), ".jpg"),
                              ("a very long photo name for the label", (64, 99), ".png")]:
        Image.fromarray(photo(w, h)).save(root / f"{stem}{ext}")
        photos[stem] = str(root / f"{stem}{ext}")
    return photos


def test_shard_writes_masks_and_rgba_at_each_photos_size(tmp_path: Path) -> None:
    results, photos = make_results(tmp_path / "results"), _photos(tmp_path / "in")
    out = tmp_path / "shard"
    cut.cutouts_shard(photos=photos, chain_json=str(results / "chain.json"), device="cpu",
                      max_empty_fraction=1.0, out_dir=str(out))
    seg = Segmenter.load(results)
    for stem, path in photos.items():
        image = read_photo(path)
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        rgba = Image.open(out / f"{stem}.png")
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert rgba.mode == "RGBA" and rgba.size == (image.shape[1], image.shape[0])
        rgba = np.asarray(rgba)
        assert np.array_equal(rgba[..., 3], mask) and np.array_equal(rgba[..., :3], image)
        assert np.array_equal(mask, seg.mask(image))
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
    results = make_results(tmp_path / "results", bias=-30.0)  # predicts no car anywhere
    photos = _photos(tmp_path / "in")
    caplog.set_level(logging.WARNING)
    with pytest.raises(GateError, match=r"3 of 3 photos came out with an empty mask") as err:
        cut.cutouts_shard(photos=photos, chain_json=str(results / "chain.json"), device="cpu",
                          max_empty_fraction=0.5, out_dir=str(tmp_path / "shard"))
    assert all(p in str(err.value) for p in photos.values())
    fallbacks = [r.getMessage() for r in caplog.records if "finds no car" in r.getMessage()]
    assert len(fallbacks) == 3
    summary = pd.read_csv(tmp_path / "shard" / "summary.csv")
    assert summary["box_fallback"].all() and summary["empty"].all()


class FixedSegmenter(Segmenter):
    """A segmenter whose chain is a function of the image at the data geometry."""

    def __init__(self, size: tuple[int, int], prob_fn) -> None:
        model = ChainModel(name="m", input="lowres", in_channels=3, size=(8, 8), weights="-")
        super().__init__(Chain(source="m", size=size, models={"m": model}, threshold=0.5),
                         runners={"m": None})
        self.prob_fn = prob_fn

    def chain_probabilities(self, image: np.ndarray) -> np.ndarray:
        return self.prob_fn(image)


def test_a_few_empty_masks_pass_with_a_warning(tmp_path: Path, caplog) -> None:
    photos = _photos(tmp_path / "in")
    seg = FixedSegmenter((96, 64), lambda image: np.full(image.shape[:2], 0.9 if image[
        ..., 2].mean() > 100 else 0.0, np.float32))
    empty_photo = tmp_path / "in" / "dark.png"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(empty_photo)
    frame = cut.run_cutouts(photos={**photos, "dark": str(empty_photo)}, segmenter=seg,
                            out_dir=tmp_path / "out")
    assert frame["empty"].tolist() == [False, False, False, True]
    assert any(str(empty_photo) in r.getMessage() for r in caplog.records)


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

    def true_mask(image: np.ndarray) -> np.ndarray:
        """Recognise the photo by its pixels (upright, at the data geometry) and return its mask."""
        errors = {s: float(np.mean(np.abs(image.astype(np.float32) - ref)))
                  for s, (ref, _) in refs.items()}
        stem = min(errors, key=errors.get)
        assert errors[stem] < 6, f"no reference photo looks like it ({errors})"
        return refs[stem][1]

    out = tmp_path / "out"
    cut.run_cutouts(photos=photos, segmenter=FixedSegmenter(size, true_mask), out_dir=out)
    for stem, path in photos.items():
        mask = np.asarray(Image.open(out / f"{stem}_mask.png")) > 0
        w, h = Image.open(path).size
        assert mask.shape == (h, w)
        expected = resize_mask(truth[stem], (w, h)) > 0
        dice = 2 * np.sum(mask & expected) / (mask.sum() + expected.sum())
        assert dice > 0.98, f"{stem}: Dice {dice:.4f}"
