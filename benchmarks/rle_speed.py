"""RLE decode and encode speed on a real 1918x1280 car mask: before and after (issue 11).

Run by hand:  python benchmarks/rle_speed.py [--mask GIF] [--repeats 51]
The mask is read from the shared sample (never copied into the repository); the 8-bit
probability map is that mask blurred (soft edges, like a model's output). "before" are the
implementations this replaced, kept here verbatim so the comparison can be rerun.

Measured on the 2-core machine, 00087a6bd4dc_01 (695 runs), 5 runs of 51-101 calls while other
jobs shared the cores (load 1-4), so each figure is the range of the 5 medians:
  decode  before: cumsum over every pixel                  13-30 ms
  decode  after:  strict parse + per-run slice writes      0.44-0.49 ms  (>= 25x)
  parse   after:  strict parse + bounds only (no truth)    0.16-0.18 ms
  encode  before: float32 map >= t, int8 pad               2.1-5.9 ms
  encode  before: the same plus read_prob's /255           3.3-7.5 ms   (what encode_shard did)
  encode  after:  uint8 map >= threshold_level(t)          1.0-1.2 ms   (>= 3x)
The two encode paths give identical strings (checked below, and in tests/test_rle.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from carvana import rle

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "carvana-sample" / "train_masks"


def decode_cumsum(code: str, shape: tuple[int, int]) -> np.ndarray:
    """The previous decoder: a difference array and a cumsum over every pixel."""
    height, width = shape
    nums = np.asarray(code.split(), dtype=np.int64)
    starts, lengths = nums[0::2] - 1, nums[1::2]
    ends = starts + lengths
    diff = np.zeros(height * width + 1, dtype=np.int32)
    np.add.at(diff, starts, 1)
    np.add.at(diff, ends, -1)
    return np.cumsum(diff[:-1]).astype(np.uint8).reshape(shape)


def encode_int8(mask: np.ndarray) -> str:
    """The previous encoder (int8 padding of ``mask != 0``)."""
    flat = np.zeros(mask.size + 2, dtype=np.int8)
    flat[1:-1] = mask.reshape(-1) != 0
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if changes.size == 0:
        return ""
    runs = changes.reshape(-1, 2)
    runs[:, 1] -= runs[:, 0]
    return " ".join(map(str, runs.ravel().tolist()))


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    """Print the before/after medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mask", type=Path, default=SAMPLE / "00087a6bd4dc_01_mask.gif")
    ap.add_argument("--repeats", type=int, default=51)
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args()
    with Image.open(args.mask) as im:
        mask = (np.asarray(im) > 0).astype(np.uint8)
    shape = mask.shape
    code = rle.encode(mask)
    prob8 = cv2.GaussianBlur(mask * np.uint8(255), (15, 15), 4)  # soft edges like a model's
    prob32 = prob8.astype(np.float32) / 255.0  # what io.read_prob returns
    assert np.array_equal(decode_cumsum(code, shape), rle.decode(code, shape))
    assert encode_int8(prob32 >= args.threshold) == rle.encode_prob8(prob8, args.threshold)
    n = args.repeats
    rows = [
        ("decode  before: cumsum", median_ms(lambda: decode_cumsum(code, shape), n)),
        ("decode  after:  slices", median_ms(lambda: rle.decode(code, shape), n)),
        ("parse   after:  runs only", median_ms(lambda: rle.parse_runs(code, shape), n)),
        ("encode  before: float32", median_ms(lambda: encode_int8(prob32 >= args.threshold), n)),
        ("encode  before: +read_prob /255", median_ms(
            lambda: encode_int8(prob8.astype(np.float32) / 255.0 >= args.threshold), n)),
        ("encode  after:  uint8", median_ms(lambda: rle.encode_prob8(prob8, args.threshold), n)),
    ]
    print(f"{args.mask.name}: {shape[1]}x{shape[0]}, {len(code.split()) // 2} runs, "
          f"median of {n} runs")
    for name, ms in rows:
        print(f"  {name:28s} {ms:7.2f} ms")


if __name__ == "__main__":
    main()
