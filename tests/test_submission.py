"""The submission: byte-identical gzip, the strict check, the empty-mask gate, the validator CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from carvana import rle
from carvana.gates import GateError
from carvana.io import DataError, write_prob
from carvana.submission import (
    EmptyMasksError,
    SubmissionError,
    check_submission,
    encode_shard,
    gather,
    validate_submission,
    write_csv_gz,
)

SHAPE = (8, 12)  # height, width
IDS = [f"{car:012x}_{angle:02d}" for car in (0xABC, 0xDEF) for angle in range(1, 11)]  # 20


def masks(n_empty: int = 0) -> dict[str, np.ndarray]:
    """A distinct non-empty mask per id, the last ``n_empty`` of them empty."""
    out = {}
    for i, image_id in enumerate(IDS):
        mask = np.zeros(SHAPE, np.uint8)
        if i < len(IDS) - n_empty:
            mask[i % SHAPE[0], : 1 + i % SHAPE[1]] = 1
            mask[-1, -1] = 1
        out[image_id] = mask
    return out


def write_sample(path: Path, ids: list[str] = IDS) -> Path:
    pd.DataFrame({"img": [f"{i}.jpg" for i in ids], "rle_mask": "1 1"}).to_csv(path, index=False)
    return path


def write_sub(path: Path, rows: list[tuple[str, str]]) -> Path:
    write_csv_gz(pd.DataFrame(rows, columns=["img", "rle_mask"]), path)
    return path


def rows_of(mask_by_id: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    return [(f"{i}.jpg", rle.encode(m)) for i, m in mask_by_id.items()]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample_submission.csv")


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_sub(tmp_path / "sub.csv.gz", rows_of(masks()))


# --- byte-identical gzip (issue 9.5) ----------------------------------------------------------

def test_gather_is_byte_identical_across_names(tmp_path: Path, sample: Path) -> None:
    rows = rows_of(masks())
    shards = []
    for k, part in enumerate((rows[:7], rows[7:])):  # shards out of sample order is fine
        shards.append(tmp_path / f"shard{k}.csv")
        pd.DataFrame(part[::-1], columns=["img", "rle_mask"]).to_csv(shards[-1], index=False)
    digests = []
    for name in ("a/submission.csv.gz", "somewhere/else/other_name.csv.gz"):
        out = tmp_path / name
        assert gather(shards, sample, out) == len(IDS)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        raw = out.read_bytes()
        assert raw[:2] == b"\x1f\x8b" and raw[3] & 0x08 == 0  # FLG.FNAME unset: no file name
        assert raw[4:8] == b"\0\0\0\0"  # MTIME 0
        assert b"submission" not in raw and b"other_name" not in raw
    assert digests[0] == digests[1]
    with gzip.open(tmp_path / "a/submission.csv.gz", "rt") as fh:
        back = pd.read_csv(fh, dtype=str, keep_default_na=False)
    assert back.values.tolist() == [list(r) for r in rows]  # sample order restored


# --- the check: file-level errors name the file -----------------------------------------------

def _fails(sub: Path, sample: Path, pattern: str, error: type = SubmissionError) -> None:
    with pytest.raises(error, match=pattern) as info:
        validate_submission(sub, sample, shape=SHAPE)
    assert str(sub) in str(info.value)


def test_good_submission_summary(good: Path, sample: Path) -> None:
    summary = validate_submission(good, sample, shape=SHAPE)
    assert summary["rows"] == 20 and summary["empty_masks"] == 0
    expected = np.mean([m.mean() for m in masks().values()])
    assert summary["mean_mask_fraction"] == pytest.approx(expected, abs=1e-6)
    assert summary["mean_dice_vs_truth"] is None


def test_plain_csv_is_accepted_too(tmp_path: Path, sample: Path) -> None:
    plain = tmp_path / "sub.csv"
    pd.DataFrame(rows_of(masks()), columns=["img", "rle_mask"]).to_csv(plain, index=False)
    assert validate_submission(plain, sample, shape=SHAPE)["rows"] == 20


def test_file_level_errors(tmp_path: Path, good: Path, sample: Path) -> None:
    empty = tmp_path / "empty.csv.gz"
    empty.write_bytes(b"")
    _fails(empty, sample, r"file is empty \(0 bytes\)")
    plain = tmp_path / "plain.csv.gz"
    plain.write_text("img,rle_mask\n")
    _fails(plain, sample, r"not a gzip file")
    empty_gz = tmp_path / "empty_inside.csv.gz"
    empty_gz.write_bytes(gzip.compress(b""))
    _fails(empty_gz, sample, r"no header line")
    binary = tmp_path / "binary.csv.gz"
    binary.write_bytes(gzip.compress(bytes(range(128, 256)) * 4))
    _fails(binary, sample, r"not UTF-8 text")
    truncated = tmp_path / "truncated.csv.gz"
    truncated.write_bytes(good.read_bytes()[:-20])
    _fails(truncated, sample, r"corrupt or truncated")
    _fails(tmp_path / "absent.csv.gz", sample, r"file is missing")


def test_not_csv_and_wrong_header(tmp_path: Path, sample: Path) -> None:
    header = tmp_path / "header.csv.gz"
    header.write_bytes(gzip.compress(b"id,mask\n"))
    _fails(header, sample, r"header must be 'img,rle_mask', found 'id,mask'")
    three = tmp_path / "three.csv.gz"
    three.write_bytes(gzip.compress(f"img,rle_mask\n{IDS[0]}.jpg,1 1,extra\n".encode()))
    _fails(three, sample, r"line 2: expected 2 fields")
    quote = tmp_path / "quote.csv.gz"
    quote.write_bytes(gzip.compress(f'img,rle_mask\n{IDS[0]}.jpg,"1 1\n'.encode()))
    _fails(quote, sample, r"not a valid CSV row")
    text = tmp_path / "text.csv.gz"
    text.write_bytes(gzip.compress(b"hello world, this is prose\n"))
    _fails(text, sample, r"header must be")


# --- ids and rows ------------------------------------------------------------------------------

def test_id_errors(tmp_path: Path, sample: Path) -> None:
    rows = rows_of(masks())
    _fails(write_sub(tmp_path / "missing.csv.gz", rows[:-1]), sample,
           rf"1 of the 20 images .* missing, the first is {IDS[-1]}\.jpg")
    _fails(write_sub(tmp_path / "dupe.csv.gz", rows[:5] + [rows[4]] + rows[5:]), sample,
           rf"line 7: image {IDS[4]}\.jpg is listed twice \(first at line 6\)")
    swapped = rows[:3] + [rows[4], rows[3]] + rows[5:]
    _fails(write_sub(tmp_path / "order.csv.gz", swapped), sample,
           rf"line 5: image {IDS[4]}\.jpg is out of order: .* has {IDS[3]}\.jpg here")
    alien = rows[:-1] + [("0123456789ab_01.jpg", "")]
    _fails(write_sub(tmp_path / "alien.csv.gz", alien), sample, r"line 21: image '0123456789ab_01")
    _fails(write_sub(tmp_path / "extra.csv.gz", rows + [rows[0]]), sample, r"line 22: .* twice")


@pytest.mark.parametrize("bad", ["1 99999999999999999999999", "2 9223372036854775807",
                                 "+1 2", "1_0 2", "\u0661 \u0662", "1 2 3", "90 10", "5 3 6 2"])
def test_bad_rle_row_is_named(tmp_path: Path, sample: Path, bad: str) -> None:
    rows = rows_of(masks())
    rows[12] = (rows[12][0], bad)
    sub = write_sub(tmp_path / "bad.csv.gz", rows)
    _fails(sub, sample, rf"line 14 \({IDS[12]}\.jpg\): ", error=rle.RLEError)


# --- the empty-mask gate (issue 8.1) -----------------------------------------------------------

@pytest.mark.parametrize(("n_empty", "limit", "passes"), [
    (0, 0.05, True), (1, 0.05, True),  # 1/20 = 5 %: at the limit passes
    (2, 0.05, False), (20, 0.05, False), (2, 0.1, True), (3, 0.1, False), (20, 1.0, True),
])
def test_empty_mask_gate(tmp_path: Path, sample: Path, n_empty: int, limit: float,
                         passes: bool) -> None:
    sub = write_sub(tmp_path / "sub.csv.gz", rows_of(masks(n_empty)))
    out = tmp_path / "results/submission_check.json"
    if passes:
        result = check_submission(sub, sample, SHAPE, None, out, max_empty_fraction=limit)
        saved = json.loads(out.read_text())
        assert saved == result and saved["empty_masks"] == n_empty
        assert saved["max_empty_fraction"] == limit
        return
    with pytest.raises(EmptyMasksError) as info:
        check_submission(sub, sample, SHAPE, None, out, max_empty_fraction=limit)
    assert isinstance(info.value, GateError)  # a quality gate like the others
    text = str(info.value)
    assert f"{n_empty} of 20 masks are empty ({n_empty / 20:.1%})" in text
    assert str(sub) in text and "results/metrics" in text and "carvana-cpu.yaml" in text
    assert not out.exists()  # no JSON when the gate fails


# --- truth and Dice ----------------------------------------------------------------------------

def _truth_csv(path: Path, mask_by_id: dict[str, np.ndarray]) -> Path:
    pd.DataFrame(rows_of(mask_by_id), columns=["img", "rle_mask"]).to_csv(path, index=False)
    return path


def _half_overlap(tmp_path: Path, sample: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A submission whose every mask covers rows 2-5 where the truth covers rows 0-3: Dice 1/2."""
    pred, truth = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    pred[2:6], truth[0:4] = 1, 1  # overlap 2 rows of 4: 2 * 24 / (48 + 48)
    sub = write_sub(tmp_path / "half.csv.gz", [(f"{i}.jpg", rle.encode(pred)) for i in IDS])
    return sub, dict.fromkeys(IDS, truth)


def test_dice_against_truth_csv_and_folder(tmp_path: Path, good: Path, sample: Path) -> None:
    truth_csv = _truth_csv(tmp_path / "truth.csv", masks())
    assert validate_submission(good, sample, SHAPE, truth=truth_csv)["mean_dice_vs_truth"] == 1.0
    sub, truth = _half_overlap(tmp_path, sample)
    half_csv = _truth_csv(tmp_path / "half_truth.csv", truth)
    assert validate_submission(sub, sample, SHAPE, truth=half_csv)["mean_dice_vs_truth"] == 0.5
    folder = tmp_path / "truth_masks"
    folder.mkdir()
    for i, (image_id, mask) in enumerate(truth.items()):
        suffix = "gif" if i % 2 else "png"
        Image.fromarray(mask * np.uint8(255), "L").save(folder / f"{image_id}_mask.{suffix}")
    assert validate_submission(sub, sample, SHAPE, truth=folder)["mean_dice_vs_truth"] == 0.5
    (folder / f"{IDS[3]}_mask.png").unlink(missing_ok=True)
    (folder / f"{IDS[3]}_mask.gif").unlink(missing_ok=True)
    with pytest.raises(SubmissionError, match=rf"no {IDS[3]}_mask.gif or .png"):
        validate_submission(sub, sample, SHAPE, truth=folder)
    with pytest.raises(SubmissionError, match=rf"has no row for {IDS[-1]}"):
        validate_submission(sub, sample, SHAPE, truth=_truth_csv(tmp_path / "t.csv",
                                                                 dict(list(truth.items())[:-1])))


# --- encode_shard: the uint8 path writes the float path's strings ------------------------------

def test_encode_shard_matches_float_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    preds = tmp_path / "preds"
    ids = IDS[:6]
    for k, image_id in enumerate(ids):
        h, w = (SHAPE if k % 3 else (4, 6))  # every third map is low-res: the resize path
        write_prob(preds / f"{image_id}.png", rng.random((h, w)).astype(np.float32))
    from carvana.io import full_size_prob

    for threshold in (0.3, 0.5, 128 / 255, 0.77):
        out = tmp_path / f"shard_{threshold}.csv"
        encode_shard(preds, ids, SHAPE[::-1], threshold, out)
        got = pd.read_csv(out, dtype=str, keep_default_na=False)["rle_mask"].tolist()
        want = [rle.encode(full_size_prob(preds, i, SHAPE[::-1]) >= threshold) for i in ids]
        assert got == want
    (preds / f"{ids[0]}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=rf"{ids[0]}\.png: cannot decode"):
        encode_shard(preds, ids, SHAPE[::-1], 0.5, tmp_path / "x.csv")


# --- the standalone validator ------------------------------------------------------------------

def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "carvana.validate", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_validator_cli(tmp_path: Path, good: Path, sample: Path) -> None:
    shape = f"{SHAPE[0]},{SHAPE[1]}"
    ok = _cli(good, "--sample", sample, "--shape", shape,
              "--truth", _truth_csv(tmp_path / "truth.csv", masks()))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("\n") == 1
    assert "20 rows, 0 empty masks" in ok.stdout and "mean Dice vs truth 1.000000" in ok.stdout
    sub, truth = _half_overlap(tmp_path, sample)
    half = _cli(sub, "--sample", sample, "--shape", shape,
                "--truth", _truth_csv(tmp_path / "ht.csv", truth))
    assert half.returncode == 0 and "mean Dice vs truth 0.500000" in half.stdout
    # the default shape is Carvana's 1280x1918: "90 10" is then in bounds, at 8x12 it is not
    rows = rows_of(masks())
    rows[2] = (rows[2][0], "90 10")
    bad = write_sub(tmp_path / "bad.csv.gz", rows)
    assert _cli(bad, "--sample", sample).returncode == 0
    fail = _cli(bad, "--sample", sample, "--shape", shape)
    assert fail.returncode == 1 and fail.stdout == ""
    assert f"line 4 ({IDS[2]}.jpg)" in fail.stderr and "past the 96 pixels" in fail.stderr
    gate = _cli(write_sub(tmp_path / "e.csv.gz", rows_of(masks(3))), "--sample", sample,
                "--shape", shape, "--max-empty-fraction", "0.1")
    assert gate.returncode == 1 and "3 of 20 masks are empty" in gate.stderr
    usage = _cli(good, "--sample", sample, "--shape", "12")
    assert usage.returncode == 2 and "expected H,W" in usage.stderr


def test_validator_console_script(good: Path, sample: Path) -> None:
    exe = shutil.which("carvana-check-submission")
    if exe is None:
        pytest.skip("console script not installed: run pip install -e .")
    proc = subprocess.run([exe, str(good), "--sample", str(sample), "--shape", "8,12"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "20 rows" in proc.stdout, proc.stderr


def test_light_modules_import_neither_torch_nor_matplotlib() -> None:
    code = ("import sys, carvana.rle, carvana.submission, carvana.validate; "
            "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
