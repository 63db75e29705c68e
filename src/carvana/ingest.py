"""Validate a Kaggle-layout data folder before anything trains on it."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from carvana.ids import BadIdError, car_of, id_from_filename
from carvana.io import (
    DataError,
    image_size,
    read_image,
    read_mask,
    write_frame,
    write_json,
)
from carvana.rle import RLEError, decode

log = logging.getLogger(__name__)


def read_submission_ids(path: str | Path) -> list[str]:
    """Image ids of a Kaggle ``img,rle_mask`` CSV (sample submission, train_masks.csv), in order.

    Every ``img`` must be ``<id>.jpg`` with a well-formed id; duplicates are an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None
    if list(frame.columns[:2]) != ["img", "rle_mask"]:
        raise DataError(f"{path}: header must be 'img,rle_mask', found {','.join(frame.columns)}")
    ids = []
    for line, img in enumerate(frame["img"], start=2):
        try:
            ids.append(id_from_filename(img, ".jpg"))
        except BadIdError as err:
            raise DataError(f"{path}, line {line}: {err}") from None
    dupes = frame["img"][frame["img"].duplicated()]
    if len(dupes):
        raise DataError(f"{path}: image {dupes.iloc[0]} is listed more than once")
    return ids


def _listed_ids(folder: Path, suffix: str) -> list[str]:
    """Ids of the files in ``folder`` ending with ``suffix``; any other non-hidden file is an error."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder is missing")
    ids = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        try:
            ids.append(id_from_filename(entry.name, suffix))
        except BadIdError as err:
            raise DataError(f"{entry}: unexpected file name ({err})") from None
    return ids


def read_train_rles(path: Path, train_ids: list[str]) -> dict[str, str]:
    """Id -> run-length string of ``train_masks.csv``; it must list exactly the train images."""
    ids = read_submission_ids(path)
    missing, extra = set(train_ids) - set(ids), set(ids) - set(train_ids)
    if missing or extra:
        what = (f"does not list train images {_first(missing)}" if missing
                else f"lists images absent from train/: {_first(extra)}")
        raise DataError(f"{path}: {what}; fix it or remove it (the GIF masks are the truth)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=["rle_mask"])
    return dict(zip(ids, frame["rle_mask"], strict=True))


def _check_pair(data_dir: Path, image_id: str, rle: str | None = None) -> tuple[int, int, float]:
    """Decode one train image and its mask (and its CSV row, if any); return (w, h, mask fraction)."""
    img_path = data_dir / "train" / f"{image_id}.jpg"
    mask_path = data_dir / "train_masks" / f"{image_id}_mask.gif"
    image = read_image(img_path)
    mask = read_mask(mask_path)
    if mask.shape != image.shape[:2]:
        raise DataError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {img_path.name} "
            f"is {image.shape[1]}x{image.shape[0]}"
        )
    if rle is not None:
        csv = data_dir / "train_masks.csv"
        try:
            row = decode(rle, mask.shape)
        except RLEError as err:
            raise DataError(f"{csv}: row {image_id}.jpg: {err}; fix the row or remove the file"
                            ) from None
        if not np.array_equal(row, mask):
            raise DataError(
                f"{csv}: row {image_id}.jpg disagrees with {mask_path.name} in "
                f"{int(np.count_nonzero(row != mask))} of {mask.size} pixels; fix the row or "
                "remove the file"
            )
    return image.shape[1], image.shape[0], float(mask.mean())


def _first(items: set[str], n: int = 5) -> str:
    shown = sorted(items)[:n]
    return ", ".join(shown) + (f" (and {len(items) - n} more)" if len(items) > n else "")


def ingest(data_dir: str | Path, train_csv: str | Path, summary_json: str | Path,
           threads: int = 1) -> dict:
    """Check the whole data folder; write the train table and a summary, or raise DataError.

    Checks: ids well formed; every train image has a mask and vice versa; every train image is
    a 3-channel RGB JPEG (magic bytes FF D8 FF) that decodes; every mask decodes, values {0,1} or
    {0,255}, same size as its image; one image size throughout; ``train_masks.csv``, when
    present, lists the train images and each row decodes to its GIF mask exactly;
    ``sample_submission.csv`` lists exactly the images in ``test/``, whose headers say RGB JPEG
    of the same size. Test images are decoded in full by the prediction jobs of their shard.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data_dir {data_dir}: folder does not exist")
    train_ids = _listed_ids(data_dir / "train", ".jpg")
    mask_ids = _listed_ids(data_dir / "train_masks", "_mask.gif")
    if not train_ids:
        raise DataError(f"{data_dir / 'train'}: no training images (*.jpg)")
    missing = set(train_ids) - set(mask_ids)
    if missing:
        raise DataError(f"{data_dir / 'train_masks'}: no mask for train images {_first(missing)}")
    orphans = set(mask_ids) - set(train_ids)
    if orphans:
        raise DataError(f"{data_dir / 'train'}: no image for masks {_first(orphans)}")

    sample = data_dir / "sample_submission.csv"
    test_ids = read_submission_ids(sample)
    present = set(_listed_ids(data_dir / "test", ".jpg"))
    if set(test_ids) - present:
        raise DataError(f"{sample}: lists images absent from test/: {_first(set(test_ids) - present)}")
    if present - set(test_ids):
        raise DataError(f"{sample}: does not list test images {_first(present - set(test_ids))}")

    rles_csv = data_dir / "train_masks.csv"
    rles = read_train_rles(rles_csv, train_ids) if rles_csv.exists() else {}
    with ThreadPoolExecutor(max(1, threads)) as pool:
        checks = list(tqdm(pool.map(lambda i: _check_pair(data_dir, i, rles.get(i)), train_ids),
                           total=len(train_ids), desc="check train", mininterval=5))
    sizes = {(w, h) for w, h, _ in checks}
    width, height = checks[0][:2]
    if len(sizes) > 1:
        odd = next(i for i, c in zip(train_ids, checks, strict=True) if c[:2] != (width, height))
        raise DataError(
            f"{data_dir / 'train' / (odd + '.jpg')}: size differs from the first train image "
            f"({width}x{height}); every image must have one size"
        )
    for test_id in tqdm(test_ids, desc="check test headers", mininterval=5):
        size = image_size(data_dir / "test" / f"{test_id}.jpg")
        if size != (width, height):
            raise DataError(
                f"{data_dir / 'test' / (test_id + '.jpg')}: is {size[0]}x{size[1]}, "
                f"the train images are {width}x{height}"
            )

    table = pd.DataFrame({
        "id": train_ids,
        "car": [car_of(i) for i in train_ids],
        "mask_fraction": np.round([c[2] for c in checks], 5),
    })
    write_frame(table, train_csv)
    summary = {
        "data_dir": str(data_dir.resolve()),
        "width": width,
        "height": height,
        "train_images": len(train_ids),
        "train_cars": int(table["car"].nunique()),
        "test_images": len(test_ids),
    }
    write_json(summary_json, summary)
    log.info("data ok: %s", summary)
    return summary


MAX_SHARDS = 200  # `test_shard_size: auto` keeps the jobs per model at most this many ...
MIN_SHARD_SIZE = 32  # ... and each job at least this many images (its start-up is seconds)


def auto_shard_size(n_images: int) -> int:
    """The ``auto`` shard size: ``max(32, ceil(n / 200))``, i.e. at most 200 shards of >= 32.

    100,064 test images give 501 a shard (200 shards); 6,400 or fewer give 32.
    """
    return max(MIN_SHARD_SIZE, -(-n_images // MAX_SHARDS))


def shards(ids: list[str], shard_size: int | str) -> dict[str, list[str]]:
    """Split ids, in order, into shards named 0000, 0001, ... of at most ``shard_size``.

    ``shard_size`` is a positive integer or ``"auto"`` (see ``auto_shard_size``).
    """
    if shard_size == "auto":
        shard_size = auto_shard_size(len(ids))
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"test_shard_size must be 'auto' or an integer >= 1, got {shard_size!r}")
    return {f"{k:04d}": ids[s : s + shard_size]
            for k, s in enumerate(range(0, len(ids), shard_size))}

