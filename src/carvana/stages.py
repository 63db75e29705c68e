"""One function per light workflow stage: file paths in, file paths out (no torch import).

The stages that train or run models are in ``carvana.model_stages``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carvana.bbox import box_analysis, boxes_from_predictions
from carvana.ensemble import ensemble_to_dir
from carvana.evaluation import evaluate_predictions, write_evaluation
from carvana.io import atomic_path, write_frame
from carvana.split import split_by_car
from carvana.tiling import TileGeometry, tile_geometry

log = logging.getLogger(__name__)


def read_json(path: str | Path) -> dict[str, Any]:
    """A small JSON file."""
    return json.loads(Path(path).read_text())


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """A small JSON file, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def split_stage(train_csv: str, out_csv: str, val_fraction: float, seed: int) -> None:
    """Group the train images by car into train and validation folds."""
    folds = split_by_car(pd.read_csv(train_csv, dtype=str), val_fraction, seed)
    with atomic_path(out_csv) as tmp:
        folds.to_csv(tmp, index=False)
    log.info("split: %s", folds.groupby("fold")["car"].nunique().to_dict())


def fold_ids(split_csv: str, fold: str | None = None) -> list[str]:
    """Ids of one fold ('train', 'val'), or all, in file order."""
    folds = pd.read_csv(split_csv, dtype=str)
    return folds["id"].tolist() if fold is None else folds.loc[folds["fold"] == fold, "id"].tolist()


def evaluate_stage(name: str, pred_dir: str, data_dir: str, split_csv: str, ingest_json: str,
                   train_summary: str | None, out_json: str, out_csv: str,
                   out_thresholds: str) -> None:
    """Score a model's validation predictions at model and full resolution."""
    info = read_json(ingest_json)
    per_image, curve = evaluate_predictions(pred_dir, data_dir, fold_ids(split_csv, "val"),
                                            (info["width"], info["height"]))
    extra = {}
    if train_summary:
        t = read_json(train_summary)
        extra = {k: t[k] for k in ("arch", "parameters", "train_seconds", "best_epoch", "size")
                 if k in t}
    summary = write_evaluation(per_image, curve, name, out_json, out_csv, out_thresholds, extra)
    log.info("%s", summary)


# --- the full-resolution branch ------------------------------------------------------------

def geometry(ingest_json: str, tiles: dict[str, Any]) -> TileGeometry:
    """Tile geometry for the data's image size and the config's `tiles:` settings."""
    info = read_json(ingest_json)
    return tile_geometry(info["width"], info["height"], tiles.get("size"),
                         tiles.get("multiple", 32), tiles.get("min_overlap", 0))


def boxes_stage(pred_dir: str, ids: list[str], ingest_json: str, tiles: dict[str, Any],
                threshold: float, margin: int, out_csv: str) -> None:
    """Bounding boxes and tile bands of ``ids`` from a low-res model's predictions."""
    frame = boxes_from_predictions(pred_dir, ids, geometry(ingest_json, tiles), threshold, margin)
    if frame["empty"].any():
        log.warning("%d images with an empty prediction get a centred band",
                    int(frame["empty"].sum()))
    write_frame(frame, out_csv)


def box_analysis_stage(boxes_csv: str, data_dir: str, split_csv: str, out_csv: str) -> None:
    """How the bands cut the true masks of the validation images."""
    boxes = pd.read_csv(boxes_csv, dtype={"id": str})
    frame = box_analysis(boxes, data_dir, fold_ids(split_csv, "val"))
    write_frame(frame, out_csv)
    log.info("band cuts %d of %d validation masks", int((frame["pixels_outside"] > 0).sum()),
             len(frame))


def ensemble_stage(members: dict[str, float], pred_dirs: list[str], ids: list[str],
                   ingest_json: str, out_dir: str) -> None:
    """Weighted average of the members' probabilities (``pred_dirs`` in ``members`` order)."""
    info = read_json(ingest_json)
    spec = {name: (d, w) for (name, w), d in zip(members.items(), pred_dirs, strict=True)}
    ensemble_to_dir(spec, ids, (info["width"], info["height"]), out_dir)


def threshold_stage(curves: dict[str, str], setting: float | str, source: str,
                    out_json: str) -> None:
    """Every model's best threshold on validation, and the submission's threshold."""
    frames = {name: pd.read_csv(path) for name, path in curves.items()}
    best = {n: f.loc[f["dice"].idxmax()] for n, f in frames.items()}
    chosen = float(best[source]["threshold"]) if setting == "best" else float(setting)
    at_05 = {n: float(np.interp(0.5, f["threshold"], f["dice"])) for n, f in frames.items()}
    write_json(out_json, {
        "source": source, "setting": setting, "threshold": chosen,
        "best": {n: {"threshold": float(b["threshold"]), "dice": round(float(b["dice"]), 6),
                     "dice_at_0.5": round(at_05[n], 6)} for n, b in best.items()},
    })


def summary_stage(metrics: dict[str, str], train_summaries: dict[str, str],
                  timings: dict[str, str], out_csv: str) -> None:
    """One row per model: validation Dice, parameters, training time, prediction time/image."""
    rows = []
    for name, path in metrics.items():
        m = read_json(path)
        t = read_json(train_summaries[name]) if name in train_summaries else {}
        p = read_json(timings[name]) if name in timings else {}
        rows.append({"model": name, "arch": t.get("arch", "ensemble"),
                     "input": t.get("input", "ensemble"),
                     "size": t.get("size") or t.get("tile") or "",
                     "in_channels": t.get("in_channels", ""),
                     "val_dice_full_res": m["val_dice_full_res"],
                     "val_dice_model_res": m["val_dice_model_res"],
                     "best_threshold": m["best_threshold"],
                     "parameters": t.get("parameters", ""),
                     "train_seconds": t.get("train_seconds", ""),
                     "epochs_run": t.get("epochs_run", ""),
                     "predict_seconds_per_image": round(p["seconds_per_image"], 4) if p else ""})
    frame = pd.DataFrame(rows).sort_values("val_dice_full_res", ascending=False)
    write_frame(frame, out_csv)
    log.info("\n%s", frame.to_string(index=False))
