"""Run-length encoding: round trips, Kaggle's conventions, and malformed strings."""

from __future__ import annotations

import numpy as np
import pytest

from carvana import rle
from carvana.io import read_mask


def test_known_encoding() -> None:
    mask = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]], dtype=np.uint8)
    # row-major, 1-indexed: pixels 1-2, 6-7, 12
    assert rle.encode(mask) == "1 2 6 2 12 1"


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 96), (7, 1918)])
def test_round_trip_random(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for density in (0.05, 0.5, 0.95):
        mask = (rng.random(shape) < density).astype(np.uint8)
        mask.flat[0] = 1
        mask.flat[-1] = 1  # the one-liner everyone copied breaks on these
        code = rle.encode(mask)
        assert code.startswith("1 ")
        assert np.array_equal(rle.decode(code, shape), mask)


def test_empty_and_full() -> None:
    empty = np.zeros((4, 6), np.uint8)
    assert rle.encode(empty) == ""
    assert not rle.decode("", (4, 6)).any()
    assert not rle.decode(float("nan"), (4, 6)).any()
    full = np.ones((4, 6), np.uint8)
    assert rle.encode(full) == "1 24"
    assert rle.decode("1 24", (4, 6)).all()


def test_bool_and_255_masks_encode_alike() -> None:
    mask = np.eye(5, dtype=bool)
    assert rle.encode(mask) == rle.encode(mask.astype(np.uint8) * 255)


@pytest.mark.parametrize("bad", ["1", "0 3", "1 0", "5 3 6 2", "1 2 x 3", "20 10"])
def test_malformed_strings_raise(bad: str) -> None:
    with pytest.raises(rle.RLEError):
        rle.decode(bad, (4, 6))


def test_real_masks_round_trip(sample_dir) -> None:
    masks = sorted((sample_dir / "train_masks").glob("*_mask.gif"))
    assert len(masks) == 16
    for path in masks:
        mask = read_mask(path)
        assert mask.shape == (1280, 1918)
        assert np.array_equal(rle.decode(rle.encode(mask), mask.shape), mask)
