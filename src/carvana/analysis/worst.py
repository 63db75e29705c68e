"""Figure 3, the worst predictions: the k worst validation (or, with kept truth, test) photos of
a model, one row each (image, truth, predicted probability, error overlay), and where each
photo's wrong pixels lie: on the true edge, near it, or farther (a blob)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from carvana.analysis.common import PathLike, read_table
from carvana.ids import validate_id
from carvana.io import (
    DataError,
    full_size_prob,
    mask_path,
    read_image,
    read_mask,
    write_frame,
)
from carvana.plots import save

FP_COLOR = np.array([230, 30, 30], dtype=np.float32)  # false positive: red
FN_COLOR = np.array([30, 90, 240], dtype=np.float32)  # false negative: blue
#: Width in pixels at which every image of the figure is shown.
DISPLAY_WIDTH = 400
HEADERS = ["image", "truth", "predicted probability", "errors: FP red, FN blue"]
#: The distance bands (pixels from the true edge) the wrong pixels are counted in.
EDGE_BANDS = (1, 3)
#: The share of the true mask's height, up from its lowest row, that is the car's lower part:
#: wheels, sill and the floor's shadow, where dark paint meets dark shadow.
LOWER_SHARE = 0.25


@dataclass(frozen=True)
class PhotoSource:
    """Where a figure's photos come from: the folder of ``<id>.jpg``, the truth (id -> {0,1}
    mask) and the folders of predicted probabilities (the first holding ``<id>.png`` is read)."""

    images: Path
    truth: Callable[[str], np.ndarray]
    preds: Sequence[Path]


def train_photos(data_dir: PathLike, pred_dir: PathLike) -> PhotoSource:
    """The train photos of a Kaggle-layout folder, their masks, one folder of probabilities."""
    return PhotoSource(Path(data_dir) / "train", lambda i: read_mask(mask_path(data_dir, i)),
                       (Path(pred_dir),))


def worst_k_table(
    per_image_csv: PathLike,
    k: int,
    column: str = "dice_full_res",
    keep: Sequence[str] = ("dice_model_res",),
) -> pd.DataFrame:
    """The ``k`` images with the lowest ``column`` (full-resolution Dice), worst first: rank,
    id, the ``keep`` columns and ``column``."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    per_image = read_table(per_image_csv, ["id", *keep, column])
    if per_image.empty:
        raise DataError(f"{per_image_csv}: no images")
    worst = per_image.sort_values([column, "id"], kind="mergesort").head(k)
    worst = worst[["id", *keep, column]].reset_index(drop=True)
    worst.insert(0, "rank", np.arange(1, len(worst) + 1))
    return worst


def error_overlay(
    image: np.ndarray, truth: np.ndarray, pred: np.ndarray, width: int | None = None
) -> np.ndarray:
    """The image faded, false positives painted red and false negatives blue (uint8 RGB).

    With ``width`` smaller than the image, the overlay is built at that display width and every
    display pixel holding any error pixel is painted (thin errors stay visible when shrunk).
    """
    fp = pred & ~truth
    fn = truth & ~pred
    if width is not None and image.shape[1] > width:
        image = _shrink(image, width)
        size = (image.shape[1], image.shape[0])
        fp, fn = _any_error(fp, size), _any_error(fn, size)
    out = 0.45 * image.astype(np.float32) + 0.55 * 255.0
    out[fp] = FP_COLOR
    out[fn] = FN_COLOR
    return out.astype(np.uint8)


def edge_distance(truth: np.ndarray) -> np.ndarray:
    """Each pixel's distance (float32 px) to the other side of the true edge: 1 on the edge
    ring (a car pixel touching the background, or a background pixel touching the car)."""
    t = truth.astype(np.uint8)
    inside = cv2.distanceTransform(t, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform(1 - t, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.where(truth, inside, outside)


def band_counts(dist: np.ndarray, wrong: np.ndarray) -> dict[str, int]:
    """The ``wrong`` pixels within 1 and 3 px of the true edge and beyond (``edge_distance``)."""
    near, close = EDGE_BANDS
    d = dist[wrong]
    return {f"wrong_within_{near}px": int((d <= near).sum()),
            f"wrong_within_{close}px": int((d <= close).sum()),
            f"wrong_beyond_{close}px": int((d > close).sum())}


def lower_part(truth: np.ndarray, share: float = LOWER_SHARE) -> np.ndarray:
    """The rows (bool, the image's shape) from the lowest ``share`` of the true mask's height
    down to the image's bottom edge; none for an empty mask."""
    rows = np.flatnonzero(truth.any(axis=1))
    out = np.zeros(truth.shape, bool)
    if rows.size:
        height = int(rows[-1] - rows[0] + 1)
        out[rows[-1] + 1 - int(np.ceil(height * share)):] = True
    return out


def errors_by_edge_distance(truth: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Wrong pixels of ``pred`` against ``truth`` (bool, same shape): false positives, false
    negatives, how many lie within 1 and 3 px of the true edge or farther, and how many in the
    car's lower part (:func:`lower_part`: wheels, sill, floor shadow)."""
    wrong = pred != truth
    return {"fp_px": int((pred & ~truth).sum()), "fn_px": int((truth & ~pred).sum()),
            **band_counts(edge_distance(truth), wrong),
            "wrong_lower_part": int((wrong & lower_part(truth)).sum())}


def _any_error(errors: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A boolean error map shrunk to ``size`` (width, height): true where any pixel erred, grown
    by one display pixel."""
    share = cv2.resize(errors.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return cv2.dilate((share > 0).astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)


def _shrink(arr: np.ndarray, width: int) -> np.ndarray:
    """Downscale (area) for display so a figure of full-size images stays small."""
    if arr.shape[1] <= width:
        return arr
    height = max(1, round(arr.shape[0] * width / arr.shape[1]))
    src = arr.astype(np.float32) if arr.dtype == bool else arr
    small = cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)
    return small if arr.dtype != bool else small >= 0.5


def worst_predictions(
    model: str,
    per_image_csv: PathLike,
    pred_dir: PathLike,
    data_dir: PathLike,
    out_png: PathLike,
    out_csv: PathLike,
    *,
    k: int = 6,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """The k worst validation predictions of ``model`` (:func:`worst_photos` on the train
    photos; the per-image Dice in the CSV is at 0.5)."""
    worst = worst_k_table(per_image_csv, k)
    return worst_photos(worst, train_photos(data_dir, pred_dir), out_png, out_csv, name=model,
                        what="validation", column="dice_full_res", threshold=threshold)


def worst_photos(
    worst: pd.DataFrame,
    photos: PhotoSource,
    out_png: PathLike,
    out_csv: PathLike,
    *,
    name: str,
    what: str,
    column: str,
    threshold: float,
) -> pd.DataFrame:
    """The figure of the ``worst`` table's photos (:func:`worst_k_table`): image, truth,
    probability, error overlay per row; the table is written to ``out_csv``.

    The error overlay thresholds the full-size probability at ``threshold`` and paints false
    positives (extra pixels) red, false negatives (missed pixels) blue. Images are shown
    ``DISPLAY_WIDTH`` pixels wide; the caption of a row gives its ``column`` (the Dice).
    """
    n = len(worst)
    first = read_image(photos.images / f"{validate_id(worst['id'].iloc[0])}.jpg")
    fig, axes = _grid(n, aspect=first.shape[0] / first.shape[1])
    counts = []
    for row, rec in enumerate(worst.to_dict("records")):
        image, truth, prob = _load(rec["id"], photos)
        counts.append(_worst_row(axes[row], f"#{rec['rank']}  {rec['id']}   Dice "
                                 f"{rec[column]:.4f}", image=image, truth=truth, prob=prob,
                                 threshold=threshold))
        if row == 0:
            for ax, header in zip(axes[row], HEADERS, strict=True):
                ax.set_title(header, fontsize=11, pad=22)
    fig.suptitle(
        f"{name}: the {n} worst {what} predictions (full-resolution Dice, threshold "
        f"{threshold:g})",
        fontsize=12,
        y=1 - 0.15 / fig.get_figheight(),
        va="top",
    )
    save(fig, out_png)
    worst = pd.concat([worst, pd.DataFrame(counts, index=worst.index)], axis=1)
    write_frame(worst, out_csv, float_format="%.6g")
    return worst


def _grid(n: int, aspect: float) -> tuple[Figure, np.ndarray]:
    """``n`` rows of four image panels of height/width ``aspect``, room above each for a caption."""
    panel_w, gap, header, margin = 3.2, 0.45, 0.75, 0.1  # inches
    panel_h = panel_w * aspect
    fig_w = 4 * panel_w + 3 * 0.1 + 2 * margin
    fig_h = header + n * (panel_h + gap) + margin
    fig, axes = plt.subplots(n, 4, figsize=(fig_w, fig_h), squeeze=False)
    fig.subplots_adjust(
        left=margin / fig_w,
        right=1 - margin / fig_w,
        bottom=margin / fig_h,
        top=1 - (header + gap) / fig_h,
        wspace=0.1 / panel_w,
        hspace=gap / panel_h,
    )
    return fig, axes


def _load(image_id: str, photos: PhotoSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A photo, its true mask (bool) and the full-size predicted probability."""
    image = read_image(photos.images / f"{validate_id(image_id)}.jpg")
    truth = photos.truth(image_id).astype(bool)
    if truth.shape != image.shape[:2]:
        raise DataError(f"{image_id}: the true mask is {truth.shape[0]}x{truth.shape[1]}, the "
                        f"photo {image.shape[0]}x{image.shape[1]} (height x width)")
    held = [d for d in photos.preds if (Path(d) / f"{image_id}.png").is_file()]
    pred_dir = held[0] if held else photos.preds[0]  # none: the error names the first folder
    prob = full_size_prob(pred_dir, image_id, (image.shape[1], image.shape[0]))
    return image, truth, prob


def _worst_row(
    axes: np.ndarray,
    caption: str,
    *,
    image: np.ndarray,
    truth: np.ndarray,
    prob: np.ndarray,
    threshold: float,
) -> dict[str, int]:
    """One image's four panels (image, truth, probability, errors) and its caption (followed
    by the counts of false-positive and false-negative pixels, and the share of wrong pixels
    within 3 px of the true edge); the counts of ``errors_by_edge_distance``."""
    pred = prob >= threshold
    _image_panel(axes[0], _shrink(image, DISPLAY_WIDTH))
    _image_panel(axes[1], _shrink(truth, DISPLAY_WIDTH), cmap="gray", vmin=0, vmax=1)
    _image_panel(axes[2], _shrink(prob, DISPLAY_WIDTH), cmap="magma", vmin=0, vmax=1)
    _image_panel(axes[3], error_overlay(image, truth, pred, DISPLAY_WIDTH))
    counts = errors_by_edge_distance(truth, pred)
    fp, fn, close = counts["fp_px"], counts["fn_px"], EDGE_BANDS[1]
    edge = counts[f"wrong_within_{close}px"] / max(fp + fn, 1)
    axes[0].text(
        0.0,
        1.02,
        f"{caption}   (FP {fp:,} px, FN {fn:,} px; {edge:.0%} within {close} px of the edge)",
        transform=axes[0].transAxes,
        ha="left",
        va="bottom",
        fontsize=9,
        fontweight="bold",
    )
    return counts


def _image_panel(ax: Axes, arr: np.ndarray, **imshow: Any) -> None:
    """An image without ticks."""
    ax.imshow(arr, interpolation="nearest", **imshow)
    ax.set_xticks([])
    ax.set_yticks([])
