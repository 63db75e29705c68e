"""Ingestion: a good folder passes; each kind of bad input stops with the file named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carvana.ingest import ingest, read_submission_ids, shards
from carvana.io import DataError, read_image


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
