"""Run-length encoding: round trips, Kaggle's conventions, and malformed strings."""

from __future__ import annotations

import csv

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import example, given, settings

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
    assert len(masks) >= 16
    kaggle = dict(csv.reader((sample_dir / "train_masks.csv").open()))
    for path in masks[::4]:
        mask = read_mask(path)
        assert mask.shape == (1280, 1918)
        code = rle.encode(mask)
        assert code == kaggle[path.name.replace("_mask.gif", ".jpg")]  # Kaggle's own string
        assert np.array_equal(rle.decode(code, mask.shape), mask)


# --- strict parsing (issue 9.3) ---------------------------------------------------------------

CAR = (1280, 1918)


@pytest.mark.parametrize("bad", [
    "1 99999999999999999999999",  # used to raise OverflowError
    "2 9223372036854775807",  # used to wrap int64 and raise IndexError
    "9223372036854775807 2",
    "+1 2", "1 +2", "1_0 2", "-1 2", "1 -2", "0x1 2", "1e3 2", "1.0 2",
    "\u0661 \u0662",  # Arabic-Indic digits
    "\uff11 \uff12",  # full-width digits
    "1 \u00b2",  # superscript two (str.isdigit() says yes)
    "1\t2", "1,2", "1 2\n3 4", "01 2", "1 02",
    "2455041 1", "2455040 2", "1 2455041",
    "3 2 1 1", "1 5 3 1", "1 2 3",
])
def test_hostile_strings_raise_rle_error(bad: str) -> None:
    with pytest.raises(rle.RLEError):
        rle.decode(bad, CAR)
    with pytest.raises(rle.RLEError):
        rle.parse_runs(bad, CAR)


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(rle.RLEError, match=r"token 2 .*larger than the 2455040 pixels"):
        rle.decode("1 99999999999999999999999", CAR)
    with pytest.raises(rle.RLEError, match=r"token 1 \('\+1'\) is not a plain number"):
        rle.decode("+1 2", CAR)
    with pytest.raises(rle.RLEError, match=r"token 3 \('x'\)"):
        rle.decode("1 2  x 4", CAR)
    with pytest.raises(rle.RLEError, match=r"run 2 .*overlaps"):
        rle.decode("1 5 3 1", CAR)
    with pytest.raises(rle.RLEError, match=r"ends at pixel 2455041, past the 2455040 pixels"):
        rle.decode("2455040 2", CAR)


def test_bounds_edges() -> None:
    last = rle.decode("2455040 1", CAR)
    assert last.sum() == 1 and last[-1, -1] == 1
    assert rle.decode("1 2455040", CAR).all()
    touching = rle.decode("1 2 3 1", (1, 4))  # adjacent runs are allowed (not overlapping)
    assert touching.tolist() == [[1, 1, 1, 0]]
    assert rle.decode("  1 2   5 1 ", (2, 3)).ravel().tolist() == [1, 1, 0, 0, 1, 0]


def test_area_and_parse_runs() -> None:
    starts, ends = rle.parse_runs("1 2 6 2 12 1", (3, 4))
    assert starts.tolist() == [0, 5, 11] and ends.tolist() == [2, 7, 12]
    assert rle.area("1 2 6 2 12 1", (3, 4)) == 5
    assert rle.area("", (3, 4)) == 0


mask_shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))


@given(mask=hnp.arrays(dtype=bool, shape=mask_shapes))
@example(mask=np.zeros((7, 5), bool))
@example(mask=np.ones((7, 5), bool))
@example(mask=np.eye(1, 35, 0, dtype=bool).reshape(7, 5))  # only the first pixel
@example(mask=np.eye(1, 35, 34, dtype=bool).reshape(7, 5))  # only the last pixel
@example(mask=np.ones((1, 1), bool))
@settings(max_examples=300, deadline=None)
def test_property_round_trip(mask: np.ndarray) -> None:
    code = rle.encode(mask)
    back = rle.decode(code, mask.shape)
    assert back.dtype == np.uint8
    assert np.array_equal(back, mask)
    assert rle.area(code, mask.shape) == int(mask.sum())
    assert (code == "") == (not mask.any())


TOKENS = st.one_of(
    st.integers(-10, 400).map(str),
    st.integers(0, 10**30).map(str),
    st.sampled_from(["+1", "1_0", "-0", "0", "00", "\u0661", "\u0663\u0660", "\uff15", "\u00b2",
                     "9223372036854775807", "9223372036854775808", "18446744073709551616",
                     "1e3", "0x10", "nan", "", "\t", "\n", "\u00a0", " "]),
    st.text(alphabet="0123456789 +-_\t\u0660\u0661\u06f1\u0966", max_size=12),
)


@given(tokens=st.lists(TOKENS, max_size=12), sep=st.sampled_from([" ", "  ", "\t", ",", ""]),
       shape=st.tuples(st.integers(1, 30), st.integers(1, 30)))
@settings(max_examples=600, deadline=None)
def test_fuzz_only_success_or_rle_error(tokens: list[str], sep: str,
                                        shape: tuple[int, int]) -> None:
    text = sep.join(tokens)
    try:
        mask = rle.decode(text, shape)
    except rle.RLEError:
        return
    # accepted: it must really be a valid RLE of ``shape``
    assert mask.shape == shape and set(np.unique(mask).tolist()) <= {0, 1}
    values = [int(t) for t in text.split()]
    assert all(t.isascii() and t.isdigit() for t in text.split())
    assert len(values) % 2 == 0
    assert int(mask.sum()) == sum(values[1::2])


# --- 8-bit thresholding (issue 11) ------------------------------------------------------------

def _all_thresholds() -> list[float]:
    """A dense grid, every exact k/255, and the floats just around each of them."""
    grid = np.linspace(0.0, 1.0, 2001).tolist()
    exact = [k / 255 for k in range(256)]
    near = [float(np.nextafter(v, d)) for v in exact for d in (0.0, 1.0)]
    near32 = [float(np.nextafter(np.float32(v), np.float32(d))) for v in exact for d in (0, 1)]
    return sorted(set(grid + exact + near + near32 + [0.05, 0.5, 0.95, 1 / 3]))


def test_uint8_threshold_gives_the_float_strings() -> None:
    rng = np.random.default_rng(11)
    prob8 = rng.permutation(np.resize(np.arange(256, dtype=np.uint8), 48 * 40)).reshape(48, 40)
    prob8[:6] = 255  # some long runs as well as single pixels
    prob8[-5:] = 0
    prob32 = prob8.astype(np.float32) / 255.0  # exactly what io.read_prob returns
    thresholds = _all_thresholds()
    assert len(thresholds) > 3000
    for t in thresholds:
        assert rle.encode_prob8(prob8, t) == rle.encode(prob32 >= t), t
    assert rle.threshold_level(0.5) == 128
    assert rle.threshold_level(128 / 255) == 128
    assert rle.threshold_level(0.0) == 0
    assert rle.threshold_level(1.5) == 256 and rle.encode_prob8(prob8, 1.5) == ""


def test_encode_prob8_rejects_float() -> None:
    with pytest.raises(ValueError, match="uint8"):
        rle.encode_prob8(np.zeros((2, 2), np.float32), 0.5)


def test_real_probability_map_same_strings(sample_dir) -> None:
    cv2 = pytest.importorskip("cv2")
    mask = read_mask(sorted((sample_dir / "train_masks").glob("*_mask.gif"))[0])
    prob8 = cv2.GaussianBlur(mask * np.uint8(255), (15, 15), 4)
    prob32 = prob8.astype(np.float32) / 255.0
    for t in (0.05, 0.3, 0.5, 128 / 255, 0.7, 0.95):
        assert rle.encode_prob8(prob8, t) == rle.encode(prob32 >= t)
