"""One function per light workflow stage: file paths in, file paths out (no torch import).

The stages that train or run models are in ``carvana.model_stages``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from carvana.analysis import comparison_table
from carvana.bbox import box_analysis, boxes_from_predictions
from carvana.ensemble import ensemble_to_dir
from carvana.evaluation import evaluate_predictions, write_evaluation
from carvana.io import read_json, write_frame, write_json
from carvana.split import split_by_car
from carvana.tiling import TileGeometry, tile_geometry

log = logging.getLogger(__name__)


def split_stage(train_csv: str, out_csv: str, val_fraction: float, seed: int) -> None:
    """Group the train images by car into train and validation folds."""
    folds = split_by_car(pd.read_csv(train_csv, dtype=str), val_fraction, seed)
    write_frame(folds, out_csv)
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
    """The model comparison table plus input channels, tile, epochs and prediction time/image."""
    table = comparison_table(list(metrics.values()), list(train_summaries.values()))
    trained = {name: read_json(path) for name, path in train_summaries.items()}
    per_image = {name: read_json(path)["seconds_per_image"] for name, path in timings.items()}
    for key in ("in_channels", "tile", "epochs_run"):
        table[key] = [trained.get(m, {}).get(key) for m in table["model"]]
    table["predict_seconds_per_image"] = table["model"].map(per_image).round(4)
    write_frame(table, out_csv, float_format="%.6g")
    log.info("\n%s", table.to_string(index=False))
