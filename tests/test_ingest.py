"""Ingestion: a good folder passes; each kind of bad input stops with the file named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carvana.ingest import auto_shard_size, ingest, read_submission_ids, shards
from carvana.io import DataError, read_image, read_mask
from carvana.rle import encode


@pytest.fixture()
def data(tiny_data, tmp_path: Path) -> Path:
    """A private copy of the tiny synthetic folder to break."""
    return Path(shutil.copytree(tiny_data[0], tmp_path / "kaggle"))


def _run(data: Path, tmp_path: Path) -> dict:
    return ingest(data, tmp_path / "out" / "train.csv", tmp_path / "out" / "ingest.json")


def _first_train(data: Path) -> str:
    return sorted(p.stem for p in (data / "train").glob("*.jpg"))[0]


def test_good_folder(data: Path, tmp_path: Path) -> None:
    summary = _run(data, tmp_path)
    assert summary["width"] == 96 and summary["height"] == 64
    assert summary["train_images"] == 32 and summary["train_cars"] == 2
    assert summary["test_images"] == 16
    assert json.loads((tmp_path / "out" / "ingest.json").read_text()) == summary


def _assert_fails(data: Path, tmp_path: Path, *needles: str) -> None:
    with pytest.raises(DataError) as err:
        _run(data, tmp_path)
    for needle in needles:
        assert needle in str(err.value)
    assert not (tmp_path / "out" / "train.csv").exists()
    assert not (tmp_path / "out" / "ingest.json").exists()


def test_missing_mask(data: Path, tmp_path: Path) -> None:
    first = _first_train(data)
    (data / "train_masks" / f"{first}_mask.gif").unlink()
    _assert_fails(data, tmp_path, "no mask", first)


def test_mask_size_mismatch(data: Path, tmp_path: Path) -> None:
    first = _first_train(data)
    path = data / "train_masks" / f"{first}_mask.gif"
    Image.new("P", (50, 40)).save(path)
    _assert_fails(data, tmp_path, str(path), "50x40")


def test_mask_bad_values(data: Path, tmp_path: Path) -> None:
    first = _first_train(data)
    path = data / "train_masks" / f"{first}_mask.gif"
    values = np.zeros((64, 96), np.uint8)
    values[10:20, 10:40] = 255
    values[20:24, 10:40] = 128  # an anti-aliased edge: a third value
    Image.fromarray(values, "L").save(path)
    _assert_fails(data, tmp_path, str(path), "mask values")


def test_truncated_jpeg(data: Path, tmp_path: Path) -> None:
    path = data / "train" / f"{_first_train(data)}.jpg"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cannot decode"):
        read_image(path)
    _assert_fails(data, tmp_path, str(path))


@pytest.mark.parametrize("bad", ["../../etc/passwd_01", "0123456789ab_17", "0123456789AB_01",
                                 "0123456789ab_1"])
def test_malformed_ids(data: Path, tmp_path: Path, bad: str) -> None:
    sample = data / "sample_submission.csv"
    lines = sample.read_text().splitlines()
    lines[1] = f"{bad}.jpg,1 1"
    sample.write_text("\n".join(lines) + "\n")
    _assert_fails(data, tmp_path, str(sample), "line 2", "malformed image id")


def test_bad_train_file_name(data: Path, tmp_path: Path) -> None:
    (data / "train" / "not-a-car.jpg").write_bytes(b"x")
    _assert_fails(data, tmp_path, "not-a-car.jpg", "unexpected file name")


def test_sample_submission_must_match_test_folder(data: Path, tmp_path: Path) -> None:
    test_images = sorted((data / "test").glob("*.jpg"))
    test_images[0].unlink()
    _assert_fails(data, tmp_path, "absent from test/", test_images[0].stem)


def test_unlisted_test_image(data: Path, tmp_path: Path) -> None:
    shutil.copy(sorted((data / "test").glob("*.jpg"))[0], data / "test" / "ffffffffffff_01.jpg")
    _assert_fails(data, tmp_path, "does not list", "ffffffffffff_01")


def test_bad_header(data: Path, tmp_path: Path) -> None:
    (data / "sample_submission.csv").write_text("image,mask\n")
    _assert_fails(data, tmp_path, "header must be 'img,rle_mask'")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        ingest(tmp_path / "nowhere", tmp_path / "t.csv", tmp_path / "s.json")


def test_read_submission_ids_rejects_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("img,rle_mask\n0123456789ab_01.jpg,1 1\n0123456789ab_01.jpg,1 1\n")
    with pytest.raises(DataError, match="more than once"):
        read_submission_ids(path)


def test_shards_cover_ids_in_order() -> None:
    ids = [f"{k:012x}_01" for k in range(10)]
    parts = shards(ids, 4)
    assert list(parts) == ["0000", "0001", "0002"]
    assert sum(parts.values(), []) == ids
    assert [len(v) for v in parts.values()] == [4, 4, 2]


@pytest.mark.parametrize(("n", "size", "count"),
                         [(6, 32, 1), (100, 32, 4), (6400, 32, 200), (6401, 33, 194),
                          (100_064, 501, 200)])
def test_auto_shard_size_bounds_the_jobs(n: int, size: int, count: int) -> None:
    assert auto_shard_size(n) == size
    ids = [f"{k:012x}_01" for k in range(n)]
    parts = shards(ids, "auto")
    assert len(parts) == count <= 200
    assert max(map(len, parts.values())) == min(size, n)
    assert sum(parts.values(), []) == ids


def test_explicit_shard_size_wins_and_bad_ones_fail() -> None:
    ids = [f"{k:012x}_01" for k in range(100)]
    assert [len(v) for v in shards(ids, 40).values()] == [40, 40, 20]
    for bad in (0, -3, "big", 2.5, True):
        with pytest.raises(ValueError, match="test_shard_size must be 'auto' or an integer"):
            shards(ids, bad)


def _replace_image(path: Path, image: Image.Image, **save: object) -> None:
    """Overwrite a data file in place, keeping its (.jpg) name."""
    with open(path, "wb") as f:
        image.save(f, **save)


@pytest.mark.parametrize("split", ["train", "test"])
def test_png_renamed_jpg(data: Path, tmp_path: Path, split: str) -> None:
    path = sorted((data / split).glob("*.jpg"))[3]
    _replace_image(path, Image.open(path).convert("RGB"), format="PNG")
    _assert_fails(data, tmp_path, str(path), "not a JPEG")


@pytest.mark.parametrize(("mode", "needle"), [("L", "grayscale JPEG"), ("CMYK", "CMYK JPEG")])
def test_train_image_must_be_rgb(data: Path, tmp_path: Path, mode: str, needle: str) -> None:
    path = data / "train" / f"{_first_train(data)}.jpg"
    _replace_image(path, Image.open(path).convert(mode), format="JPEG", quality=95)
    _assert_fails(data, tmp_path, str(path), needle, "3-channel RGB")


def test_test_image_of_another_size(data: Path, tmp_path: Path) -> None:
    path = sorted((data / "test").glob("*.jpg"))[5]
    _replace_image(path, Image.open(path).convert("RGB").resize((80, 64)), format="JPEG")
    _assert_fails(data, tmp_path, str(path), "is 80x64", "96x64")


def _write_train_masks_csv(data: Path) -> list[str]:
    """Kaggle's train_masks.csv, made from the GIF masks; returns its lines."""
    ids = sorted(p.stem for p in (data / "train").glob("*.jpg"))
    lines = ["img,rle_mask"] + [
        f"{i}.jpg,{encode(read_mask(data / 'train_masks' / f'{i}_mask.gif'))}" for i in ids]
    (data / "train_masks.csv").write_text("\n".join(lines) + "\n")
    return lines


def test_train_masks_csv_that_agrees_passes(data: Path, tmp_path: Path) -> None:
    lines = _write_train_masks_csv(data)
    assert len(lines) == 33 and all(line.count(" ") > 1 for line in lines[1:])
    assert _run(data, tmp_path)["train_images"] == 32


def test_train_masks_csv_row_that_disagrees(data: Path, tmp_path: Path) -> None:
    lines = _write_train_masks_csv(data)
    image_id, rle = lines[7].split(",")
    runs = rle.split()
    runs[1] = str(int(runs[1]) + 1)  # the first run one pixel longer
    lines[7] = f"{image_id},{' '.join(runs)}"
    (data / "train_masks.csv").write_text("\n".join(lines) + "\n")
    _assert_fails(data, tmp_path, str(data / "train_masks.csv"), image_id,
                  "disagrees", "in 1 of 6144 pixels")


def test_train_masks_csv_row_that_does_not_decode(data: Path, tmp_path: Path) -> None:
    lines = _write_train_masks_csv(data)
    image_id = lines[4].split(",")[0]
    lines[4] = f"{image_id},5 3 1"
    (data / "train_masks.csv").write_text("\n".join(lines) + "\n")
    _assert_fails(data, tmp_path, str(data / "train_masks.csv"), image_id)


def test_train_masks_csv_must_list_the_train_images(data: Path, tmp_path: Path) -> None:
    lines = _write_train_masks_csv(data)
    dropped = lines.pop(9).split(",")[0].removesuffix(".jpg")
    (data / "train_masks.csv").write_text("\n".join(lines) + "\n")
    _assert_fails(data, tmp_path, "train_masks.csv", "does not list train images", dropped)


def test_real_sample_with_its_train_masks_csv(sample_dir: Path, tmp_path: Path) -> None:
    """Two real cars, linked (never copied) into a Kaggle folder: the real CSV agrees."""
    data = tmp_path / "kaggle"
    for sub in ("train", "train_masks", "test"):
        (data / sub).mkdir(parents=True)
    cars = sorted({p.name[:12] for p in (sample_dir / "train").glob("*.jpg")})[:2]
    ids = sorted(p.stem for p in (sample_dir / "train").glob("*.jpg") if p.name[:12] in cars)
    for i in ids:
        (data / "train" / f"{i}.jpg").symlink_to(sample_dir / "train" / f"{i}.jpg")
        (data / "train_masks" / f"{i}_mask.gif").symlink_to(
            sample_dir / "train_masks" / f"{i}_mask.gif")
    (data / "test" / "ffffffffffff_01.jpg").symlink_to(sample_dir / "train" / f"{ids[0]}.jpg")
    (data / "sample_submission.csv").write_text("img,rle_mask\nffffffffffff_01.jpg,1 1\n")
    rows = (sample_dir / "train_masks.csv").read_text().splitlines()
    kept = [rows[0]] + [r for r in rows[1:] if r[:12] in cars]
    (data / "train_masks.csv").write_text("\n".join(kept) + "\n")
    summary = _run(data, tmp_path)
    assert (summary["width"], summary["height"], summary["train_images"]) == (1918, 1280, 32)
    first = kept[1].split(",")[0]
    runs = kept[1].split(",")[1].split()
    kept[1] = f"{first},{' '.join([runs[0], str(int(runs[1]) - 1), *runs[2:]])}"
    (data / "train_masks.csv").write_text("\n".join(kept) + "\n")
    shutil.rmtree(tmp_path / "out")
    _assert_fails(data, tmp_path, first, "disagrees", "in 1 of 2455040 pixels")
