"""The Kaggle submission: encode shards, gather them in sample order, decode and check."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from carvana import rle
from carvana.ingest import read_submission_ids
from carvana.io import DataError, atomic_path, full_size_prob, write_frame, write_json
from carvana.metrics import dice

log = logging.getLogger(__name__)


def encode_shard(pred_dir: str | Path, ids: list[str], size: tuple[int, int], threshold: float,
                 out_csv: str | Path) -> None:
    """Threshold each full-size probability map and write ``img,rle_mask`` rows for the shard."""
    rows = []
    for image_id in tqdm(ids, desc=f"encode {pred_dir}", mininterval=5):
        prob = full_size_prob(pred_dir, image_id, size)
        rows.append((f"{image_id}.jpg", rle.encode(prob >= threshold)))
    write_frame(pd.DataFrame(rows, columns=["img", "rle_mask"]), out_csv)


def gather(shard_csvs: list[str | Path], sample_submission: str | Path, out_gz: str | Path) -> int:
    """Concatenate shard CSVs into one gzip CSV holding every sample id once, in sample order."""
    order = read_submission_ids(sample_submission)
    parts = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in shard_csvs]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["img", "rle_mask"])
    if frame["img"].duplicated().any():
        raise DataError(f"shards encode {frame['img'][frame['img'].duplicated()].iloc[0]} twice")
    wanted = [f"{i}.jpg" for i in order]
    missing = set(wanted) - set(frame["img"])
    extra = set(frame["img"]) - set(wanted)
    if missing or extra:
        raise DataError(f"shards do not match {sample_submission}: {len(missing)} missing "
                        f"(e.g. {sorted(missing)[:3]}), {len(extra)} extra (e.g. {sorted(extra)[:3]})")
    frame = frame.set_index("img").loc[wanted].reset_index()
    with atomic_path(out_gz) as tmp:
        frame.to_csv(tmp, index=False, compression={"method": "gzip", "mtime": 0})
    return len(frame)


def check_submission(sub_gz: str | Path, sample_submission: str | Path, size: tuple[int, int],
                     truth_csv: str | Path | None, out_json: str | Path) -> dict:
    """Decode every row back; count rows and empty masks; score against the truth if given."""
    frame = pd.read_csv(sub_gz, dtype=str, keep_default_na=False)
    if list(frame.columns) != ["img", "rle_mask"]:
        raise DataError(f"{sub_gz}: header must be img,rle_mask, found {list(frame.columns)}")
    expected = [f"{i}.jpg" for i in read_submission_ids(sample_submission)]
    if frame["img"].tolist() != expected:
        raise DataError(f"{sub_gz}: images are not those of {sample_submission}, in its order")
    truth = None
    if truth_csv is not None:
        truth = pd.read_csv(truth_csv, dtype=str, keep_default_na=False).set_index("img")["rle_mask"]
    width, height = size
    empty, scores, fractions = 0, [], []
    for img, code in tqdm(zip(frame["img"], frame["rle_mask"], strict=True), total=len(frame),
                          desc="check submission", mininterval=5):
        try:
            mask = rle.decode(code, (height, width))
        except rle.RLEError as err:
            raise DataError(f"{sub_gz}: row {img}: {err}") from None
        empty += int(not mask.any())
        fractions.append(float(mask.mean()))
        if truth is not None:
            scores.append(dice(mask, rle.decode(truth[img], (height, width))))
    result = {
        "rows": len(frame),
        "empty_masks": empty,
        "mean_mask_fraction": round(float(np.mean(fractions)) if fractions else 0.0, 6),
        "width": width,
        "height": height,
        "mean_dice_vs_truth": round(float(np.mean(scores)), 6) if scores else None,
    }
    write_json(out_json, result)
    log.info("submission check: %s", result)
    return result
