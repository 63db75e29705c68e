"""Kaggle run-length encoding: row-major, 1-indexed ``start length`` pairs, '' for an empty mask."""

from __future__ import annotations

import numpy as np


class RLEError(ValueError):
    """A run-length string that does not decode to the given shape."""


def encode(mask: np.ndarray) -> str:
    """Encode a 2-D mask (nonzero = foreground) in Kaggle's RLE.

    The flat mask is padded with a 0 on both ends so a first or last foreground pixel is safe.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    flat = np.zeros(mask.size + 2, dtype=np.int8)
    flat[1:-1] = mask.reshape(-1) != 0
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1  # 1-indexed positions of run edges
    if changes.size == 0:
        return ""
    runs = changes.reshape(-1, 2)
    runs[:, 1] -= runs[:, 0]
    return " ".join(map(str, runs.ravel().tolist()))


def decode(rle: str | float | None, shape: tuple[int, int]) -> np.ndarray:
    """Decode Kaggle RLE into a uint8 {0,1} mask of ``shape`` (height, width).

    An empty string (or NaN, as pandas reads an empty cell) gives an empty mask.
    """
    height, width = shape
    out = np.zeros(height * width, dtype=np.uint8)
    if rle is None or (isinstance(rle, float) and np.isnan(rle)) or not str(rle).strip():
        return out.reshape(shape)
    try:
        nums = np.asarray(str(rle).split(), dtype=np.int64)
    except ValueError as err:
        raise RLEError(f"non-integer token in run-length string: {err}") from None
    if nums.size % 2:
        raise RLEError("run-length string has an odd number of values")
    starts, lengths = nums[0::2] - 1, nums[1::2]
    if (starts < 0).any() or (lengths <= 0).any():
        raise RLEError("run-length string has a start < 1 or a length < 1")
    ends = starts + lengths
    if ends.max() > out.size:
        raise RLEError(f"run ends at pixel {int(ends.max())}, past the {out.size} pixels of {shape}")
    if (starts[1:] < ends[:-1]).any():
        raise RLEError("runs overlap or are not in increasing order")
    # difference array: +1 at each start, -1 at each end, cumulative sum marks the runs
    diff = np.zeros(out.size + 1, dtype=np.int32)
    np.add.at(diff, starts, 1)
    np.add.at(diff, ends, -1)
    return np.cumsum(diff[:-1]).astype(np.uint8).reshape(shape)
