"""Figure 3, the worst predictions: a model's k worst validation images, one row each (image,
truth, predicted probability, error overlay)."""

from __future__ import annotations

from typing import Any

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from carvana.analysis.common import PathLike, read_table
from carvana.io import (
    DataError,
    full_size_prob,
    image_path,
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


def worst_k_table(per_image_csv: PathLike, k: int) -> pd.DataFrame:
    """The ``k`` validation images with the lowest full-resolution Dice, worst first."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    per_image = read_table(per_image_csv, ["id", "dice_model_res", "dice_full_res"])
    if per_image.empty:
        raise DataError(f"{per_image_csv}: no validation images")
    worst = per_image.sort_values(["dice_full_res", "id"], kind="mergesort").head(k)
    worst = worst[["id", "dice_model_res", "dice_full_res"]].reset_index(drop=True)
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
    """The k worst validation predictions: image, truth, probability, error overlay per row.

    The error overlay thresholds the full-size probability at ``threshold`` (the per-image
    Dice in the CSV is at 0.5) and paints false positives red, false negatives blue. Images
    are shown ``DISPLAY_WIDTH`` pixels wide.
    """
    worst = worst_k_table(per_image_csv, k)
    write_frame(worst, out_csv, float_format="%.6g")
    n = len(worst)
    first = read_image(image_path(data_dir, "train", worst["id"].iloc[0]))
    fig, axes = _grid(n, aspect=first.shape[0] / first.shape[1])
    for row, rec in enumerate(worst.to_dict("records")):
        image, truth, prob = _load(rec["id"], pred_dir=pred_dir, data_dir=data_dir)
        _worst_row(axes[row], rec, image=image, truth=truth, prob=prob, threshold=threshold)
        if row == 0:
            for ax, header in zip(axes[row], HEADERS, strict=True):
                ax.set_title(header, fontsize=11, pad=22)
    fig.suptitle(
        f"{model}: the {n} worst validation predictions (full-resolution Dice, threshold "
        f"{threshold:g})",
        fontsize=12,
        y=1 - 0.15 / fig.get_figheight(),
        va="top",
    )
    save(fig, out_png)
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


def _load(
    image_id: str, *, pred_dir: PathLike, data_dir: PathLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A train image, its true mask (bool) and the full-size predicted probability."""
    image = read_image(image_path(data_dir, "train", image_id))
    truth = read_mask(mask_path(data_dir, image_id)).astype(bool)
    if truth.shape != image.shape[:2]:
        raise DataError(f"{mask_path(data_dir, image_id)}: mask size differs from the image")
    prob = full_size_prob(pred_dir, image_id, (image.shape[1], image.shape[0]))
    return image, truth, prob


def _worst_row(
    axes: np.ndarray,
    rec: dict[str, Any],
    *,
    image: np.ndarray,
    truth: np.ndarray,
    prob: np.ndarray,
    threshold: float,
) -> None:
    """One image's four panels (image, truth, probability, errors) and its caption."""
    pred = prob >= threshold
    _image_panel(axes[0], _shrink(image, DISPLAY_WIDTH))
    _image_panel(axes[1], _shrink(truth, DISPLAY_WIDTH), cmap="gray", vmin=0, vmax=1)
    _image_panel(axes[2], _shrink(prob, DISPLAY_WIDTH), cmap="magma", vmin=0, vmax=1)
    _image_panel(axes[3], error_overlay(image, truth, pred, DISPLAY_WIDTH))
    fp, fn = int((pred & ~truth).sum()), int((truth & ~pred).sum())
    axes[0].text(
        0.0,
        1.02,
        f"#{rec['rank']}  {rec['id']}   Dice {rec['dice_full_res']:.4f}"
        f"   (FP {fp:,} px, FN {fn:,} px)",
        transform=axes[0].transAxes,
        ha="left",
        va="bottom",
        fontsize=9,
        fontweight="bold",
    )


def _image_panel(ax: Axes, arr: np.ndarray, **imshow: Any) -> None:
    """An image without ticks."""
    ax.imshow(arr, interpolation="nearest", **imshow)
    ax.set_xticks([])
    ax.set_yticks([])
