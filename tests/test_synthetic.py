"""The synthetic Carvana generator: Kaggle layout and formats, determinism, masks that fit."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from carvana import ids, rle
from carvana.synthetic import SyntheticConfig, _cars, generate, main, render_car, synthetic_ids

W, H = 96, 64
CFG = SyntheticConfig(seed=11, train_cars=2, test_cars=1, width=W, height=H)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def largest_share(mask: np.ndarray) -> float:
    """Share of the mask's pixels in its largest 8-connected component."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return stats[1:, cv2.CC_STAT_AREA].max() / mask.sum() if n > 1 else 0.0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate(root / "kaggle", root / "truth", CFG, progress=False)
    return root


def test_layout_and_formats(data: Path) -> None:
    kaggle = data / "kaggle"
    assert sorted(p.name for p in kaggle.iterdir()) == [
        "metadata.csv",
        "sample_submission.csv",
        "test",
        "train",
        "train_masks",
        "train_masks.csv",
    ]
    assert [p.name for p in (data / "truth").iterdir()] == ["test_masks.csv"]
    train_ids, test_ids = synthetic_ids(CFG)
    assert len(train_ids) == 2 * 16 and len(test_ids) == 16
    assert not set(train_ids) & set(test_ids)
    assert sorted(p.stem for p in (kaggle / "train").iterdir()) == train_ids
    assert sorted(p.stem for p in (kaggle / "test").iterdir()) == test_ids
    assert sorted(p.name for p in (kaggle / "train_masks").iterdir()) == [
        f"{i}_mask.gif" for i in train_ids
    ]
    for i in train_ids + test_ids:
        assert ids.ID_RE.fullmatch(i)

    for folder, some in (("train", train_ids[:3]), ("test", test_ids[:3])):
        for i in some:
            with Image.open(kaggle / folder / f"{i}.jpg") as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size == (W, H)
    header, rows = read_csv(kaggle / "train_masks.csv")
    assert header == ["img", "rle_mask"]
    assert [r[0] for r in rows] == [f"{i}.jpg" for i in train_ids]
    for name, code in rows:
        with Image.open(kaggle / "train_masks" / name.replace(".jpg", "_mask.gif")) as im:
            assert im.format == "GIF" and im.mode == "P" and im.size == (W, H)
            gif = np.asarray(im)
        assert set(np.unique(gif).tolist()) <= {0, 1}
        np.testing.assert_array_equal(rle.decode(code, (H, W)), gif)

    header, rows = read_csv(kaggle / "sample_submission.csv")
    assert header == ["img", "rle_mask"]
    assert rows == [[f"{i}.jpg", "1 1"] for i in test_ids]

    header, rows = read_csv(data / "truth" / "test_masks.csv")
    assert header == ["img", "rle_mask"]
    assert [r[0] for r in rows] == [f"{i}.jpg" for i in test_ids]
    for _, code in rows:
        mask = rle.decode(code, (H, W))
        assert 0.08 < mask.mean() < 0.4
        assert largest_share(mask) > 0.9

    header, rows = read_csv(kaggle / "metadata.csv")
    assert header == ["id", "year", "make", "model", "trim1", "trim2"]
    assert sorted(r[0] for r in rows) == sorted({ids.car_of(i) for i in train_ids + test_ids})
    assert all(2000 < int(r[1]) < 2030 and r[2] and r[3] for r in rows)


def test_deterministic(data: Path, tmp_path: Path) -> None:
    generate(tmp_path / "kaggle", tmp_path / "truth", CFG, progress=False)
    assert all_files(tmp_path) == all_files(data)
    other = SyntheticConfig(seed=12, train_cars=1, test_cars=1, width=W, height=H)
    a_train, _ = synthetic_ids(other)
    assert not set(a_train) & set(synthetic_ids(CFG)[0])
    car = _cars(CFG)[0][2]
    im1, _ = render_car(car, 3, W, H, np.random.default_rng(0))
    car2 = _cars(other)[0][2]
    im2, _ = render_car(car2, 3, W, H, np.random.default_rng(0))
    assert np.abs(im1.astype(int) - im2.astype(int)).mean() > 1.0
    # a car does not depend on how many cars there are
    more = SyntheticConfig(seed=11, train_cars=3, test_cars=2, width=W, height=H)
    assert _cars(more)[0][2] == car
    assert set(synthetic_ids(CFG)[0]) <= set(synthetic_ids(more)[0])


def test_masks_fit_images(data: Path) -> None:
    kaggle = data / "kaggle"
    train_ids, _ = synthetic_ids(CFG)
    for car in sorted({ids.car_of(i) for i in train_ids}):
        widths = {}
        for angle in range(1, 17):
            i = f"{car}_{angle:02d}"
            image = np.asarray(Image.open(kaggle / "train" / f"{i}.jpg")).astype(np.float32)
            mask = np.asarray(Image.open(kaggle / "train_masks" / f"{i}_mask.gif")).astype(bool)
            assert 0.08 < mask.mean() < 0.4, (i, mask.mean())
            inside, outside = image[mask].mean(axis=0), image[~mask].mean(axis=0)
            assert np.abs(inside - outside).max() > 3.0, i
            # the image changes where the mask does: edges lie on the mask boundary
            grey = image.mean(axis=2)
            grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
            m8 = mask.astype(np.uint8)
            edge = (
                cv2.dilate(m8, np.ones((3, 3), np.uint8)) - cv2.erode(m8, np.ones((3, 3), np.uint8))
            ) > 0
            assert grad[edge].mean() > 1.5 * grad[~edge].mean(), i
            assert largest_share(mask) > 0.9, i
            cols = np.flatnonzero(mask.any(axis=0))
            widths[angle] = cols[-1] - cols[0]
        assert min(widths[5], widths[13]) > max(widths[1], widths[9]), widths


def test_render_sizes() -> None:
    car = _cars(CFG)[1][2]
    for w, h in ((64, 48), (200, 90), (150, 200)):
        image, mask = render_car(car, 5, w, h, np.random.default_rng(1))
        assert image.shape == (h, w, 3) and image.dtype == np.uint8
        assert mask.shape == (h, w) and set(np.unique(mask).tolist()) <= {0, 1}
        assert 0.03 < mask.mean() < 0.6
    with pytest.raises(ValueError):
        render_car(car, 17, 96, 64, np.random.default_rng(1))


def test_cli_and_threads(tmp_path: Path) -> None:
    cfg = SyntheticConfig(seed=4, train_cars=1, test_cars=1, width=64, height=48)
    argv = [
        "--out",
        str(tmp_path / "cli" / "kaggle"),
        "--truth",
        str(tmp_path / "cli" / "truth"),
        "--seed",
        "4",
        "--train-cars",
        "1",
        "--test-cars",
        "1",
        "--width",
        "64",
        "--height",
        "48",
        "--threads",
        "2",
        "--quiet",
    ]
    assert main(argv) == 0
    kaggle = tmp_path / "cli" / "kaggle"
    for name in (
        "train",
        "train_masks",
        "test",
        "train_masks.csv",
        "sample_submission.csv",
        "metadata.csv",
    ):
        assert (kaggle / name).exists(), name
    assert len(list((kaggle / "train").glob("*.jpg"))) == 16
    generate(
        tmp_path / "one" / "kaggle", tmp_path / "one" / "truth", cfg, threads=1, progress=False
    )
    assert all_files(tmp_path / "cli") == all_files(tmp_path / "one")
    assert (
        main(
            [
                "--out",
                str(tmp_path / "x"),
                "--truth",
                str(tmp_path / "y"),
                "--width",
                "10",
                "--quiet",
            ]
        )
        == 2
    )
