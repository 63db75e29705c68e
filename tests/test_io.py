"""Image and mask readers: cv2 decode identical to PIL's, strict formats, read_mask as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carvana.io import DataError, image_size, read_image, read_mask


def _pil_decode(path: Path, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """The reference decode: PIL, with ``draft`` for a reduced scale (the pre-cv2 read_image)."""
    with Image.open(path) as im:
        if min_size is not None:
            im.draft("RGB", min_size)
        return np.asarray(im.convert("RGB"))


def _old_read_mask(path: Path) -> np.ndarray:
    """read_mask as it was, with np.unique: the reference for results and error messages."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L") if im.mode not in ("P", "L", "1") else im)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    values = np.unique(arr)
    if np.isin(values, (0, 1)).all():
        return arr.astype(np.uint8)
    if np.isin(values, (0, 255)).all():
        return (arr > 0).astype(np.uint8)
    shown = ", ".join(map(str, values[:8].tolist()))
    raise DataError(f"{path}: mask values must be {{0,1}} or {{0,255}}, found {shown}")


def _photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth image with sharp edges and noise: exercises every DCT frequency."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(1, width - 1), yy * 255 // max(1, height - 1),
                     ((xx // 7 + yy // 5) % 2) * 200], axis=2)
    return np.clip(base + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("width", "height", "subsampling", "progressive"),
                         [(96, 64, 2, False), (97, 61, 2, False), (130, 77, 0, False),
                          (131, 75, 1, True), (1918 // 4, 1280 // 4, 2, False)])
def test_read_image_equals_pil(tmp_path: Path, width: int, height: int, subsampling: int,
                               progressive: bool) -> None:
    path = tmp_path / "0123456789ab_01.jpg"
    Image.fromarray(_photo(width, height)).save(path, quality=90, subsampling=subsampling,
                                                progressive=progressive)
    for min_size in (None, (width, height), (width // 2, height // 2), (width // 3, height // 5),
                     (width // 8, height // 8), (16, 16), (1, 1)):
        got, ref = read_image(path, min_size=min_size), _pil_decode(path, min_size)
        assert got.dtype == np.uint8 and got.flags["C_CONTIGUOUS"]
        assert got.shape == ref.shape, min_size
        assert np.array_equal(got, ref), min_size
    assert image_size(path) == (width, height)


def test_read_image_equals_pil_on_real_photos(sample_dir: Path) -> None:
    paths = sorted((sample_dir / "train").glob("*.jpg"))[::8]
    for path in paths:
        for min_size in (None, (480, 320), (128, 128)):
            assert np.array_equal(read_image(path, min_size=min_size), _pil_decode(path, min_size))


def test_read_image_rejects_non_jpeg_and_non_rgb(tmp_path: Path) -> None:
    photo = _photo(40, 30)
    png = tmp_path / "png.jpg"
    Image.fromarray(photo).save(png, format="PNG")
    gray = tmp_path / "gray.jpg"
    Image.fromarray(photo[..., 0]).save(gray, format="JPEG")
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(photo).convert("CMYK").save(cmyk, format="JPEG")
    junk, empty = tmp_path / "junk.jpg", tmp_path / "empty.jpg"
    junk.write_bytes(b"GIF89a not really")
    empty.write_bytes(b"")
    cases = [(png, "not a JPEG"), (gray, "grayscale JPEG"), (cmyk, "CMYK JPEG"),
             (junk, "not a JPEG"), (empty, "not a JPEG")]
    for path, needle in cases:
        for reader in (read_image, image_size):
            with pytest.raises(DataError) as err:
                reader(path)
            assert str(path) in str(err.value) and needle in str(err.value), reader
    with pytest.raises(DataError, match="missing"):
        read_image(tmp_path / "nowhere.jpg")


@pytest.mark.parametrize("cut", [1, 2, 100, 0.5])
def test_truncated_jpeg_raises(tmp_path: Path, cut: float) -> None:
    path = tmp_path / "t.jpg"
    Image.fromarray(_photo(64, 48)).save(path, quality=90)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * cut)] if cut < 1 else raw[: -int(cut)])
    with pytest.raises(DataError, match=f"{path}: cannot decode"):
        read_image(path)


def _mask_file(tmp_path: Path, name: str, values: np.ndarray, mode: str) -> Path:
    path = tmp_path / name
    if mode == "P":
        im = Image.fromarray(values, "P")
        im.putpalette([0, 0, 0, 255, 255, 255] + [128] * 762)
        im.save(path, format="GIF")
    elif mode == "1":
        Image.fromarray(values.astype(bool)).save(path, format="PNG")
    else:
        Image.fromarray(values, mode).save(path, format="PNG")
    return path


@pytest.mark.parametrize(("mode", "values"), [
    ("P", (0, 1)), ("P", (0,)), ("P", (1,)), ("P", (0, 255)), ("L", (0, 255)), ("L", (255,)),
    ("L", (0, 1)), ("1", (0, 1)), ("RGB", (0, 255)),
    ("P", (0, 2)), ("L", (0, 128, 255)), ("L", (1, 255)), ("L", (0, 254)), ("P", (0, 1, 255)),
])
def test_read_mask_same_as_with_unique(tmp_path: Path, mode: str, values: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(values))
    arr = np.asarray(values, np.uint8)[rng.integers(0, len(values), (37, 53))]
    if mode == "RGB":
        arr = np.repeat(arr[..., None], 3, axis=2)
    path = _mask_file(tmp_path, "m.gif" if mode == "P" else "m.png", arr, mode)
    try:
        ref = _old_read_mask(path)
    except DataError as err:
        with pytest.raises(DataError) as got:
            read_mask(path)
        assert str(got.value) == str(err)
        return
    got = read_mask(path)
    assert got.dtype == ref.dtype == np.uint8 and got.flags["WRITEABLE"]
    assert np.array_equal(got, ref)
    assert set(np.unique(got).tolist()) <= {0, 1}
