"""The Kaggle submission: encode shards, gather them in sample order, decode and check.

One checker serves the workflow's ``check_submission`` rule and the standalone
``carvana-check-submission`` command (:mod:`carvana.validate`): :func:`validate_submission`
streams the file row by row, so a full 100,064-row submission needs little memory.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from carvana import rle
from carvana.gates import GateError
from carvana.ingest import read_submission_ids
from carvana.io import DataError, atomic_path, full_size_prob, read_mask, write_frame, write_json
from carvana.metrics import dice

log = logging.getLogger(__name__)

HEADER = ["img", "rle_mask"]
GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_SHAPE = (1280, 1918)  # (height, width) of every Carvana photo


class SubmissionError(DataError):
    """A submission (or truth) file that cannot be read, or whose rows or ids are wrong."""


class EmptyMasksError(SubmissionError, GateError):
    """A readable submission with more empty masks than the configured share allows (a gate)."""


def _read_prob8(path: Path) -> np.ndarray:
    """A stored probability PNG as its raw 8-bit levels (io.read_prob divides these by 255)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: probability map is missing") from None
    except (OSError, SyntaxError) as err:
        raise DataError(f"{path}: cannot decode probability map ({err})") from None


def encode_shard(pred_dir: str | Path, ids: list[str], size: tuple[int, int], threshold: float,
                 out_csv: str | Path) -> None:
    """Threshold each full-size probability map and write ``img,rle_mask`` rows for the shard.

    Maps stored at full size (``size`` is width, height) are thresholded on their 8-bit levels
    (:func:`rle.encode_prob8`, the same strings as the float path); smaller maps are resized
    bilinearly in float first.
    """
    rows = []
    for image_id in tqdm(ids, desc=f"encode {pred_dir}", mininterval=5):
        prob8 = _read_prob8(Path(pred_dir) / f"{image_id}.png")
        if prob8.shape[::-1] == tuple(size):
            code = rle.encode_prob8(prob8, threshold)
        else:
            code = rle.encode(full_size_prob(pred_dir, image_id, size) >= threshold)
        rows.append((f"{image_id}.jpg", code))
    write_frame(pd.DataFrame(rows, columns=HEADER), out_csv)


def write_csv_gz(frame: pd.DataFrame, out_gz: str | Path) -> None:
    """Write ``frame`` as a gzip CSV, atomically and byte-identically for equal frames.

    The gzip header carries no file name and mtime 0, so neither the temporary name of the
    atomic write nor the time ends up in the file.
    """
    with (atomic_path(out_gz) as tmp, open(tmp, "wb") as raw,
          gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
          io.TextIOWrapper(gz, encoding="utf-8", newline="") as text):
        frame.to_csv(text, index=False, lineterminator="\n")


def gather(shard_csvs: list[str | Path], sample_submission: str | Path, out_gz: str | Path) -> int:
    """Concatenate shard CSVs into one gzip CSV holding every sample id once, in sample order."""
    order = read_submission_ids(sample_submission)
    parts = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in shard_csvs]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=HEADER)
    if frame["img"].duplicated().any():
        raise DataError(f"shards encode {frame['img'][frame['img'].duplicated()].iloc[0]} twice")
    wanted = [f"{i}.jpg" for i in order]
    missing = set(wanted) - set(frame["img"])
    extra = set(frame["img"]) - set(wanted)
    if missing or extra:
        raise DataError(f"shards do not match {sample_submission}: {len(missing)} missing "
                        f"(e.g. {sorted(missing)[:3]}), {len(extra)} extra (e.g. {sorted(extra)[:3]})")
    write_csv_gz(frame.set_index("img").loc[wanted].reset_index()[HEADER], out_gz)
    return len(frame)


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    """Open a CSV, gunzipping it when it starts with the gzip magic; file-level errors named."""
    if not path.is_file():
        raise SubmissionError(f"{path}: file is missing")
    with open(path, "rb") as raw:
        magic = raw.read(2)
        if not magic:
            raise SubmissionError(f"{path}: file is empty (0 bytes); rerun the step that wrote it")
        raw.seek(0)
        if magic == GZIP_MAGIC:
            with gzip.open(raw, "rt", encoding="utf-8-sig", newline="") as text:
                yield text
        elif path.suffix == ".gz":
            raise SubmissionError(f"{path}: not a gzip file (it starts with {magic!r}); "
                                  "compress it with gzip, or give the plain .csv a .csv name")
        else:
            with io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
                yield text


def iter_rows(path: str | Path, max_field: int = 1 << 27) -> Iterator[tuple[int, str, str]]:
    """``(line, img, rle_mask)`` for every data row of an ``img,rle_mask`` CSV (plain or gzip).

    Raises :class:`SubmissionError` naming the file (and line) when it is empty, not gzip,
    not UTF-8 text, not a two-column CSV, or when its header is not ``img,rle_mask``.
    """
    path = Path(path)
    old_limit = csv.field_size_limit(max(csv.field_size_limit(), max_field))
    line = 1
    try:
        with _open_text(path) as text:
            reader = csv.reader(text, strict=True)
            header = next(reader, None)
            if header is None:
                raise SubmissionError(f"{path}: no header line (empty after decompression); "
                                      "expected 'img,rle_mask'")
            if header != HEADER:
                raise SubmissionError(f"{path}: header must be 'img,rle_mask', found "
                                      f"{','.join(header)[:80]!r}; is this a submission CSV?")
            for line, row in enumerate(reader, start=2):
                if len(row) != 2:
                    raise SubmissionError(f"{path}, line {line}: expected 2 fields (img,rle_mask), "
                                          f"found {len(row)}; is this a submission CSV?")
                yield line, row[0], row[1]
    except (OSError, EOFError, zlib.error) as err:
        raise SubmissionError(f"{path}: cannot decompress after line {line} ({err}); the file is "
                              "corrupt or truncated, write or download it again") from None
    except UnicodeDecodeError as err:
        raise SubmissionError(f"{path}: not UTF-8 text after line {line} ({err.reason}); "
                              "is this a CSV?") from None
    except csv.Error as err:
        raise SubmissionError(f"{path}, line {line + 1}: not a valid CSV row ({err})") from None
    finally:
        csv.field_size_limit(old_limit)


def _id_problem(img: str, index: int, position: dict[str, int], expected: list[str],
                sample: Path) -> str | None:
    """Why data row ``index`` holding ``img`` breaks the sample's order, or None if it does not."""
    if index < len(expected) and img == expected[index]:
        return None
    where = position.get(img)
    if where is None:
        return f"image {img!r} is not in {sample}"
    if where < index:
        return f"image {img} is listed twice (first at line {where + 2})"
    return (f"image {img} is out of order: {sample} has {expected[index]} here "
            "(rows must follow the sample's order)")


def load_truth(truth: str | Path, shape: tuple[int, int]) -> Callable[[str], np.ndarray]:
    """A function from ``<id>.jpg`` to its true {0,1} mask, from a folder or an RLE CSV.

    A folder holds ``<id>_mask.gif`` or ``<id>_mask.png``; a CSV is ``img,rle_mask`` like
    Kaggle's ``train_masks.csv``. A missing id or a bad mask raises naming the file.
    """
    truth = Path(truth)
    if truth.is_dir():
        def from_folder(img: str) -> np.ndarray:
            stem = img.removesuffix(".jpg")
            for path in (truth / f"{stem}_mask.gif", truth / f"{stem}_mask.png"):
                if path.is_file():
                    mask = read_mask(path)
                    if mask.shape != tuple(shape):
                        raise SubmissionError(f"{path}: mask is {mask.shape[0]}x{mask.shape[1]}, "
                                              f"the submission's shape is {shape[0]}x{shape[1]}")
                    return mask
            raise SubmissionError(f"{truth}: no {stem}_mask.gif or .png for {img}")
        return from_folder
    codes: dict[str, tuple[int, str]] = {}
    for line, img, code in iter_rows(truth):
        if img in codes:
            raise SubmissionError(f"{truth}, line {line}: image {img} is listed twice")
        codes[img] = (line, code)

    def from_csv(img: str) -> np.ndarray:
        if img not in codes:
            raise SubmissionError(f"{truth}: has no row for {img}")
        line, code = codes[img]
        try:
            return rle.decode(code, shape)
        except rle.RLEError as err:
            raise rle.RLEError(f"{truth}, line {line} ({img}): {err}") from None
    return from_csv


def validate_submission(sub: str | Path, sample_submission: str | Path,
                        shape: tuple[int, int] = DEFAULT_SHAPE,
                        truth: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Check a submission against Kaggle's rules and return its summary; raise at the first problem.

    Checks the header, that the ids are the sample's, each once, in its order, and that every
    RLE is valid for ``shape`` (height, width). File and id problems raise
    :class:`SubmissionError`, a bad RLE row :class:`rle.RLEError`; both name the file and line.
    With ``truth`` (see :func:`load_truth`) the summary has the mean Dice.
    """
    sub, sample = Path(sub), Path(sample_submission)
    expected = [f"{i}.jpg" for i in read_submission_ids(sample)]
    position = {img: i for i, img in enumerate(expected)}
    true_mask = load_truth(truth, shape) if truth is not None else None
    pixels = int(shape[0]) * int(shape[1])
    rows = empty = foreground = 0
    scores: list[float] = []
    for line, img, code in tqdm(iter_rows(sub, max_field=16 * pixels + 1024), total=len(expected),
                                desc="check submission", mininterval=5, disable=not progress):
        problem = _id_problem(img, rows, position, expected, sample)
        if problem:
            raise SubmissionError(f"{sub}, line {line}: {problem}")
        try:
            starts, ends = rle.parse_runs(code, shape)
        except rle.RLEError as err:
            raise rle.RLEError(f"{sub}, line {line} ({img}): {err}") from None
        rows += 1
        area = int((ends - starts).sum())
        empty += int(area == 0)
        foreground += area
        if true_mask is not None:
            scores.append(dice(rle.decode(code, shape), true_mask(img)))
    if rows < len(expected):
        raise SubmissionError(f"{sub}: {len(expected) - rows} of the {len(expected)} images of "
                              f"{sample} are missing, the first is {expected[rows]}")
    return {
        "rows": rows,
        "empty_masks": empty,
        "empty_fraction": round(empty / rows, 6) if rows else 0.0,
        "mean_mask_fraction": round(foreground / (rows * pixels), 6) if rows else 0.0,
        "width": int(shape[1]),
        "height": int(shape[0]),
        "mean_dice_vs_truth": round(float(np.mean(scores)), 6) if scores else None,
    }


def check_empty_fraction(summary: dict[str, Any], max_empty_fraction: float,
                         sub: str | Path) -> None:
    """Raise :class:`EmptyMasksError` when more than ``max_empty_fraction`` of the masks are empty."""
    rows, empty = summary["rows"], summary["empty_masks"]
    if rows and empty / rows > max_empty_fraction:
        raise EmptyMasksError(
            f"{sub}: {empty} of {rows} masks are empty ({empty / rows:.1%}), more than "
            f"submission.max_empty_fraction = {max_empty_fraction:g} allows. The models found no "
            "car: check their validation Dice in results/metrics/<model>.json and the training "
            "logs; on real photos use configs/carvana-cpu.yaml (pretrained encoders); raise "
            "submission.max_empty_fraction only if empty masks are really expected."
        )


def summary_line(summary: dict[str, Any]) -> str:
    """One line for a terminal: rows, empty masks and, if scored, the mean Dice."""
    text = (f"{summary['rows']} rows, {summary['empty_masks']} empty masks "
            f"({summary['empty_fraction']:.1%}), mean mask fraction {summary['mean_mask_fraction']:.4f}")
    if summary.get("mean_dice_vs_truth") is not None:
        text += f", mean Dice vs truth {summary['mean_dice_vs_truth']:.6f}"
    return text


def check_submission(sub_gz: str | Path, sample_submission: str | Path, shape: tuple[int, int],
                     truth: str | Path | None, out_json: str | Path,
                     max_empty_fraction: float = 0.05) -> dict[str, Any]:
    """The workflow's check: validate, apply the empty-mask gate, then (only then) write the JSON."""
    summary = validate_submission(sub_gz, sample_submission, shape=shape, truth=truth)
    check_empty_fraction(summary, max_empty_fraction, sub_gz)
    summary["max_empty_fraction"] = max_empty_fraction
    write_json(out_json, summary)
    log.info("submission check: %s", summary_line(summary))
    return summary
