"""Analysis figures and tables for the report: model zoo, resolution ladder, worst predictions,
threshold curves, learning curves and the tile-band (bounding box) analysis.

Every public figure function reads the files the workflow writes, writes one PNG and one CSV
(atomically) and returns the table it wrote. A missing or malformed input raises ``DataError``
naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from carvana.io import (  # noqa: E402
    DataError,
    full_size_prob,
    image_path,
    mask_path,
    read_image,
    read_json,
    read_mask,
    write_frame,
)
from carvana.plots import save  # noqa: E402

PathLike = str | Path

#: Public leaderboard scores of the original solution's low-res U-Nets (real Kaggle data, 2017).
KAGGLE_PUBLIC_LB: dict[int, float] = {128: 0.9908, 256: 0.9942, 512: 0.9958, 1024: 0.9961}

COMPARISON_COLUMNS = [
    "model",
    "arch",
    "input",
    "size",
    "parameters",
    "val_dice_model_res",
    "val_dice_full_res",
    "best_threshold",
    "train_seconds",
]
HISTORY_COLUMNS = ["epoch", "phase", "lr", "train_loss", "val_loss", "val_dice", "seconds"]
BBOX_COLUMNS = [
    "id",
    "r0",
    "r1",
    "c0",
    "c1",
    "band_r0",
    "band_r1",
    "mask_pixels",
    "mask_rows",
    "pixels_outside",
    "rows_above",
    "rows_below",
    "box_height",
    "box_width",
]
FP_COLOR = np.array([230, 30, 30], dtype=np.float32)  # false positive: red
FN_COLOR = np.array([30, 90, 240], dtype=np.float32)  # false negative: blue


# --------------------------------------------------------------------------- reading inputs


def read_table(path: PathLike, columns: Sequence[str]) -> pd.DataFrame:
    """A CSV that must have ``columns``; DataError naming the file if missing or incomplete."""
    try:
        frame = pd.read_csv(path, dtype={"id": str, "model": str, "phase": str})
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read CSV ({err})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def model_label(row: Mapping[str, Any]) -> str:
    """A short label: ``name (arch, 128px)`` / ``name (arch, tiles)`` / ``name``."""
    parts = []
    if isinstance(row.get("arch"), str) and row["arch"]:
        parts.append(row["arch"])
    size = row.get("size")
    if row.get("input") == "tiles":
        parts.append("full-res tiles")
    elif size is not None and not pd.isna(size):
        parts.append(f"{int(size)}px")
    return f"{row['model']} ({', '.join(parts)})" if parts else str(row["model"])


def zoomed_limits(
    values: Sequence[float], pad: float = 0.15, min_span: float = 0.002
) -> tuple[float, float]:
    """Axis limits around ``values`` (Dice values crowd near 1; starting at 0 hides differences)."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    span = max(hi - lo, min_span)
    return max(0.0, lo - pad * span), hi + pad * span


# --------------------------------------------------------------------------- 1. model comparison


def comparison_table(
    metrics_paths: Sequence[PathLike], train_paths: Sequence[PathLike] = ()
) -> pd.DataFrame:
    """One row per scored model, best full-resolution validation Dice first.

    Metrics JSONs give the scores; training summaries (matched by their ``model`` key) fill in
    arch, input, size, parameters and training time where the metrics lack them. A model without
    a training summary (the ensemble) keeps empty cells.
    """
    if not metrics_paths:
        raise DataError("no metrics files given: nothing to compare")
    trained = {}
    for path in train_paths:
        summary = read_json(path)
        trained[summary.get("model", summary.get("name", Path(path).parent.name))] = summary
    rows = []
    for path in metrics_paths:
        metrics = read_json(path)
        for key in ("model", "val_dice_full_res"):
            if key not in metrics:
                raise DataError(f"{path}: missing key {key!r}")
        extra = trained.get(metrics["model"], {})
        rows.append({c: metrics.get(c, extra.get(c)) for c in COMPARISON_COLUMNS})
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    table["input"] = table["input"].fillna("")  # keep a string column for empty/ensemble rows
    table["size"] = table["size"].astype("Int64")
    table["parameters"] = table["parameters"].astype("Int64")
    return table.sort_values(
        ["val_dice_full_res", "model"], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)


def model_comparison(
    metrics_paths: Sequence[PathLike],
    train_paths: Sequence[PathLike],
    out_png: PathLike,
    out_csv: PathLike,
) -> pd.DataFrame:
    """Horizontal bars of every model's validation Dice at full resolution, best on top."""
    table = comparison_table(metrics_paths, train_paths)
    write_frame(table, out_csv, float_format="%.6g")
    n = len(table)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * n))
    y = np.arange(n)[::-1]  # best model at the top
    full = table["val_dice_full_res"].to_numpy(float)
    model_res = table["val_dice_model_res"].to_numpy(float)
    colors = ["C7" if a != a or not a else "C0" for a in table["arch"]]  # grey: no arch (ensemble)
    ax.barh(y, full, height=0.6, color=colors)
    (diamonds,) = ax.plot(model_res, y, "D", color="C1", mfc="none", label="at model resolution")
    handles = [Patch(color="C0", label="full resolution (the competition's score)"), diamonds]
    if "C7" in colors:
        handles.append(Patch(color="C7", label="full resolution, no training run (ensemble)"))
    lo, hi = zoomed_limits(np.concatenate([full, model_res[~np.isnan(model_res)]]), pad=0.3)
    ax.set_xlim(lo, hi)
    for yi, value in zip(y, full, strict=True):
        ax.text(value, yi, f" {value:.4f}", va="center", ha="left", fontsize=9)
    ax.set_yticks(y, [model_label(r) for r in table.to_dict("records")])
    zoom_note = " (x-axis zoomed: it does not start at 0)" if lo > 0 else ""
    ax.set_xlabel(f"mean validation Dice{zoom_note}")
    ax.set_title(f"Model comparison: validation Dice of {n} model(s)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.9)
    save(fig, out_png)
    return table


# --------------------------------------------------------------------------- 2. resolution ladder


def ladder_table(
    metrics_paths: Sequence[PathLike], train_paths: Sequence[PathLike]
) -> pd.DataFrame:
    """Low-res U-Nets (arch unet, input lowres) by input size, with Kaggle's public LB beside.

    One row per size in our ladder or Kaggle's; ``kaggle_public_lb`` is the original solution's
    leaderboard score on the real data, not ours.
    """
    table = comparison_table(metrics_paths, train_paths)
    ours = table[(table["arch"] == "unet") & (table["input"] == "lowres") & table["size"].notna()]
    if ours.empty:
        raise DataError(
            "no low-res U-Net among the models given (need arch 'unet', input 'lowres', a size): "
            + ", ".join(map(str, metrics_paths))
        )
    ours = ours.sort_values(["size", "val_dice_full_res"], ascending=[True, False])
    ours = ours.drop_duplicates("size")[
        ["size", "model", "parameters", "val_dice_model_res", "val_dice_full_res"]
    ]
    kaggle = pd.DataFrame(
        {"size": list(KAGGLE_PUBLIC_LB), "kaggle_public_lb": list(KAGGLE_PUBLIC_LB.values())}
    )
    kaggle["size"] = kaggle["size"].astype("Int64")
    out = ours.merge(kaggle, on="size", how="outer").sort_values("size")
    return out.reset_index(drop=True)


def ladder_figure(
    metrics_paths: Sequence[PathLike],
    train_paths: Sequence[PathLike],
    out_png: PathLike,
    out_csv: PathLike,
) -> pd.DataFrame:
    """Dice against input size (log2 axis) for the low-res U-Nets, Kaggle's LB on a twin axis."""
    table = ladder_table(metrics_paths, train_paths)
    write_frame(table, out_csv, float_format="%.6g")
    ours = table[table["model"].notna()]
    sizes = ours["size"].to_numpy(int)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(sizes, ours["val_dice_model_res"], "o-", color="C0", label="ours: at model resolution")
    ax.plot(sizes, ours["val_dice_full_res"], "s-", color="C3", label="ours: at full resolution")
    for size, model, value in zip(sizes, ours["model"], ours["val_dice_full_res"], strict=True):
        ax.annotate(
            f"{model}: {value:.4f}",
            (size, value),
            textcoords="offset points",
            xytext=(8, -4),
            ha="left",
            va="top",
            fontsize=8,
            color="C3",
        )
    lo, hi = zoomed_limits(
        np.concatenate([ours["val_dice_model_res"], ours["val_dice_full_res"]]), pad=0.35
    )
    ax.set_ylim(lo, hi)
    ax.set_ylabel("our validation Dice")
    kag = ax.twinx()
    kaggle = pd.Series(KAGGLE_PUBLIC_LB)
    kag.plot(
        kaggle.index,
        kaggle.values,
        "^--",
        color="grey",
        alpha=0.8,
        label="Kaggle public LB of the original solution (real data; not ours)",
    )
    for size, value in KAGGLE_PUBLIC_LB.items():
        kag.annotate(
            f"{value:.4f}",
            (size, value),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=8,
            color="grey",
        )
    kag.set_ylim(*zoomed_limits(kaggle.values, pad=0.35))
    kag.set_ylabel("Kaggle public leaderboard (original solution)", color="grey")
    kag.tick_params(axis="y", colors="grey")
    all_sizes = sorted({*sizes.tolist(), *KAGGLE_PUBLIC_LB})
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_sizes, [str(s) for s in all_sizes])
    ax.minorticks_off()
    ax.set_xlim(all_sizes[0] / 1.4, all_sizes[-1] * 1.4)
    ax.set_xlabel("input size of the low-res U-Net (pixels per side, log2 scale)")
    ax.set_title("The resolution ladder: Dice against input size")
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + kag.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
    save(fig, out_png)
    return table


# --------------------------------------------------------------------------- 3. worst predictions


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
    k: int = 6,
    threshold: float = 0.5,
    display_width: int = 400,
) -> pd.DataFrame:
    """The k worst validation predictions: image, truth, probability, error overlay per row.

    The error overlay thresholds the full-size probability at ``threshold`` (the per-image
    Dice in the CSV is at 0.5) and paints false positives red, false negatives blue. Images
    are shown ``display_width`` pixels wide.
    """
    worst = worst_k_table(per_image_csv, k)
    write_frame(worst, out_csv, float_format="%.6g")
    n = len(worst)
    first = read_image(image_path(data_dir, "train", worst["id"].iloc[0]))
    panel_w, gap, header, margin = 3.2, 0.45, 0.75, 0.1  # inches
    panel_h = panel_w * first.shape[0] / first.shape[1]
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
    headers = ["image", "truth", "predicted probability", "errors: FP red, FN blue"]
    for row, rec in enumerate(worst.to_dict("records")):
        image_id = rec["id"]
        image = read_image(image_path(data_dir, "train", image_id))
        truth = read_mask(mask_path(data_dir, image_id)).astype(bool)
        if truth.shape != image.shape[:2]:
            raise DataError(f"{mask_path(data_dir, image_id)}: mask size differs from the image")
        prob = full_size_prob(pred_dir, image_id, (image.shape[1], image.shape[0]))
        pred = prob >= threshold
        panels = [
            (_shrink(image, display_width), {}),
            (_shrink(truth, display_width), {"cmap": "gray", "vmin": 0, "vmax": 1}),
            (_shrink(prob, display_width), {"cmap": "magma", "vmin": 0, "vmax": 1}),
            (error_overlay(image, truth, pred, display_width), {}),
        ]
        for col, (arr, kwargs) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(arr, interpolation="nearest", **kwargs)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(headers[col], fontsize=11, pad=22)
        fp, fn = int((pred & ~truth).sum()), int((truth & ~pred).sum())
        axes[row, 0].text(
            0.0,
            1.02,
            f"#{rec['rank']}  {image_id}   Dice {rec['dice_full_res']:.4f}"
            f"   (FP {fp:,} px, FN {fn:,} px)",
            transform=axes[row, 0].transAxes,
            ha="left",
            va="bottom",
            fontsize=9,
            fontweight="bold",
        )
    fig.suptitle(
        f"{model}: the {n} worst validation predictions (full-resolution Dice, threshold "
        f"{threshold:g})",
        fontsize=12,
        y=1 - 0.15 / fig_h,
        va="top",
    )
    save(fig, out_png)
    return worst


# --------------------------------------------------------------------------- 4. threshold curves


def threshold_table(curves: Mapping[str, pd.DataFrame], reference: float = 0.5) -> pd.DataFrame:
    """Per model: the best threshold, its Dice, the Dice at ``reference`` and the gain."""
    rows = []
    for model, curve in curves.items():
        best = curve.loc[curve["dice"].idxmax()]
        at_ref = curve.loc[(curve["threshold"] - reference).abs().idxmin()]
        rows.append(
            {
                "model": model,
                "best_threshold": float(best["threshold"]),
                "dice_at_best": float(best["dice"]),
                "threshold_reference": float(at_ref["threshold"]),
                "dice_at_reference": float(at_ref["dice"]),
                "gain": float(best["dice"] - at_ref["dice"]),
            }
        )
    return pd.DataFrame(rows).sort_values("dice_at_best", ascending=False).reset_index(drop=True)


def threshold_curves(
    threshold_csvs: Mapping[str, PathLike],
    out_png: PathLike,
    out_csv: PathLike,
    reference: float = 0.5,
) -> pd.DataFrame:
    """Validation Dice against the binarisation threshold, every model, best marked."""
    if not threshold_csvs:
        raise DataError("no threshold curves given")
    curves = {}
    for model, path in threshold_csvs.items():
        curve = read_table(path, ["threshold", "dice"]).sort_values("threshold")
        if curve.empty:
            raise DataError(f"{path}: no thresholds")
        curves[model] = curve
    table = threshold_table(curves, reference)
    write_frame(table, out_csv, float_format="%.6g")
    fig, (ax_all, ax_gain) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (model, curve) in enumerate(curves.items()):
        color = f"C{i % 10}"
        best = table.set_index("model").loc[model]
        ax_all.plot(curve["threshold"], curve["dice"], "-", color=color, label=model)
        ax_all.plot(best["best_threshold"], best["dice_at_best"], "*", color=color, ms=12, mec="k")
        gain = curve["dice"] - best["dice_at_reference"]
        ax_gain.plot(
            curve["threshold"],
            gain,
            "-",
            color=color,
            label=f"{model}: best t={best['best_threshold']:.2f}, {best['gain']:+.5f}",
        )
        ax_gain.plot(best["best_threshold"], best["gain"], "*", color=color, ms=12, mec="k")
    ax_all.axvline(reference, color="grey", ls=":", lw=1)
    ax_all.set(
        xlabel="threshold on the probability",
        ylabel="mean validation Dice (full resolution)",
        title="Dice against threshold (★ = best)",
    )
    ax_all.legend(fontsize=8)
    # the gain panel zooms on the middle thresholds, where the choice is actually made
    window = (0.2, 0.8)
    ax_gain.axvline(reference, color="grey", ls=":", lw=1)
    ax_gain.axhline(0, color="grey", lw=1)
    inside = np.concatenate(
        [
            (c["dice"] - table.set_index("model").loc[m, "dice_at_reference"])[
                c["threshold"].between(*window)
            ].to_numpy()
            for m, c in curves.items()
        ]
    )
    if inside.size:
        lo, hi = float(inside.min()), float(inside.max())
        span = max(hi - lo, 1e-4)
        ax_gain.set_ylim(lo - 0.1 * span, hi + 0.2 * span)
    ax_gain.set_xlim(*window)
    ax_gain.set(
        xlabel="threshold on the probability",
        ylabel=f"Dice minus Dice at threshold {reference:g}",
        title=f"Gain from tuning the threshold (zoom on {window[0]:g}-{window[1]:g})",
    )
    ax_gain.legend(fontsize=8)
    for ax in (ax_all, ax_gain):
        ax.grid(alpha=0.3)
    save(fig, out_png)
    return table


# --------------------------------------------------------------------------- 5. learning curves


def history_table(histories: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per model: epochs run, best epoch and Dice, last losses and total training time."""
    rows = []
    for model, hist in histories.items():
        best = hist.loc[hist["val_dice"].idxmax()]
        last = hist.iloc[-1]
        rows.append(
            {
                "model": model,
                "epochs_run": len(hist),
                "fine_tune_epochs": int((hist["phase"] == "fine_tune").sum()),
                "best_epoch": int(best["epoch"]),
                "best_val_dice": float(best["val_dice"]),
                "last_train_loss": float(last["train_loss"]),
                "last_val_loss": float(last["val_loss"]),
                "final_lr": float(last["lr"]),
                "train_seconds": float(hist["seconds"].sum()),
            }
        )
    return pd.DataFrame(rows)


def learning_curves(
    history_csvs: Mapping[str, PathLike], out_png: PathLike, out_csv: PathLike
) -> pd.DataFrame:
    """One panel per model: train/validation loss (left axis), validation Dice (right axis)."""
    if not history_csvs:
        raise DataError("no training histories given")
    histories = {}
    for model, path in history_csvs.items():
        hist = read_table(path, HISTORY_COLUMNS)
        if hist.empty:
            raise DataError(f"{path}: no epochs")
        histories[model] = hist
    table = history_table(histories)
    write_frame(table, out_csv, float_format="%.6g")
    n = len(histories)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    legend: dict[str, Any] = {}
    for ax, (model, hist) in zip(axes.flat, histories.items(), strict=False):
        ax.plot(hist["epoch"], hist["train_loss"], "o-", ms=3, color="C0", label="train loss")
        ax.plot(hist["epoch"], hist["val_loss"], "o--", ms=3, color="C1", label="val loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        dice_ax = ax.twinx()
        dice_ax.plot(hist["epoch"], hist["val_dice"], "s-", ms=3, color="C2", label="val Dice")
        dice_ax.set_ylabel("validation Dice", color="C2")
        dice_ax.tick_params(axis="y", colors="C2")
        best = hist.loc[hist["val_dice"].idxmax()]
        ax.axvline(best["epoch"], color="grey", ls=":", lw=1)
        tuned = hist[hist["phase"] == "fine_tune"]
        if len(tuned):
            ax.axvspan(
                tuned["epoch"].min() - 0.5,
                tuned["epoch"].max() + 0.5,
                color="C1",
                alpha=0.1,
                label="fine-tune",
            )
        ax.set_title(f"{model}: best Dice {best['val_dice']:.4f} at epoch {int(best['epoch'])}")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles = ax.get_legend_handles_labels()[0] + dice_ax.get_legend_handles_labels()[0]
        legend.update({h.get_label(): h for h in handles})
    fig.suptitle("Learning curves (dotted line: best epoch; shaded: fine-tune phase)")
    fig.legend(
        handles=list(legend.values()),
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()),
        ncol=len(legend),
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
    save(fig, out_png)
    return table


# --------------------------------------------------------------------------- 6. bounding boxes


def _pixel_bins(values: pd.Series, max_bins: int) -> np.ndarray:
    """Histogram edges for integer pixel counts: whole-pixel steps, at least one pixel wide."""
    lo, hi = int(values.min()), int(values.max())
    step = max(1, math.ceil((hi - lo + 1) / max_bins))
    pad = max(0, 10 - (hi - lo)) // 2  # a few empty bins around (nearly) constant values
    return np.arange(lo - pad - 0.5, hi + pad + step + 0.5, step)


def bbox_stats(frame: pd.DataFrame) -> dict[str, int | float]:
    """Summary statistics of the predicted boxes and of how the tile band cuts the true masks."""
    cut = frame["pixels_outside"] > 0
    frac = frame["pixels_outside"] / frame["mask_pixels"].where(frame["mask_pixels"] > 0)
    rows_out = frame["rows_above"] + frame["rows_below"]
    stats = {
        "images": len(frame),
        "images_cut": int(cut.sum()),
        "share_cut": round(float(cut.mean()), 6) if len(frame) else 0.0,
        "images_cut_above": int((frame["rows_above"] > 0).sum()),
        "images_cut_below": int((frame["rows_below"] > 0).sum()),
        "pixels_outside_total": int(frame["pixels_outside"].sum()),
        "pixels_outside_max": int(frame["pixels_outside"].max()),
        "share_of_mask_outside_max": round(float(frac.max()), 6) if frac.notna().any() else 0.0,
        "rows_outside_max": int(rows_out.max()),
        "box_height_min": int(frame["box_height"].min()),
        "box_height_median": float(frame["box_height"].median()),
        "box_height_max": int(frame["box_height"].max()),
        "box_width_min": int(frame["box_width"].min()),
        "box_width_median": float(frame["box_width"].median()),
        "box_width_max": int(frame["box_width"].max()),
        "band_height_median": float((frame["band_r1"] - frame["band_r0"]).median()),
    }
    return stats


def bbox_analysis(bbox_csv: PathLike, out_png: PathLike, out_csv: PathLike) -> pd.DataFrame:
    """Box sizes, how often and how much the tile band cuts the true mask (notebooks 8 and 13)."""
    frame = read_table(bbox_csv, BBOX_COLUMNS)
    if frame.empty:
        raise DataError(f"{bbox_csv}: no validation images")
    stats = bbox_stats(frame)
    table = pd.DataFrame(
        {"stat": list(stats), "value": pd.Series(list(stats.values()), dtype=object)}
    )
    write_frame(table, out_csv, float_format="%.6g")
    band = stats["band_height_median"]
    bins = min(30, max(5, len(frame) // 2))
    height_bins = _pixel_bins(frame["box_height"], bins)
    width_bins = _pixel_bins(frame["box_width"], bins)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    (ax_h, ax_w, ax_n), (ax_rows, ax_px, ax_sc) = axes

    ax_h.hist(frame["box_height"], bins=height_bins, color="C0", edgecolor="white")
    ax_h.axvline(band, color="C3", ls="--", label=f"tile band height ({band:.0f} rows, median)")
    ax_h.set(xlabel="predicted box height (rows, full resolution)", ylabel="images")
    ax_h.set_title("Box height")
    ax_h.legend(fontsize=8)

    ax_w.hist(frame["box_width"], bins=width_bins, color="C0", edgecolor="white")
    ax_w.set(xlabel="predicted box width (columns, full resolution)", ylabel="images")
    ax_w.set_title("Box width")
    ax_w.ticklabel_format(axis="x", useOffset=False, style="plain")

    cut_above = frame["rows_above"] > 0
    cut_below = frame["rows_below"] > 0
    counts = {
        "inside band": int((frame["pixels_outside"] == 0).sum()),
        "cut above only": int((cut_above & ~cut_below).sum()),
        "cut below only": int((cut_below & ~cut_above).sum()),
        "cut both sides": int((cut_above & cut_below).sum()),
    }
    bars = ax_n.bar(list(counts), list(counts.values()), color=["C2", "C1", "C1", "C3"])
    ax_n.bar_label(bars)
    ax_n.margins(y=0.12)
    ax_n.set_ylabel("validation images")
    ax_n.set_title(
        f"Does the band hold the whole mask? ({stats['images_cut']} of {len(frame)} cut)"
    )
    ax_n.tick_params(axis="x", labelsize=8)

    cut = frame[frame["pixels_outside"] > 0]
    if len(cut):
        above, below = cut.loc[cut["rows_above"] > 0], cut.loc[cut["rows_below"] > 0]
        ax_rows.hist(
            [above["rows_above"], below["rows_below"]],
            bins=min(20, max(3, len(cut))),
            label=[f"above the band ({len(above)})", f"below the band ({len(below)})"],
            color=["C1", "C4"],
        )
        ax_rows.legend(fontsize=8)
        share = 100 * cut["pixels_outside"] / cut["mask_pixels"].clip(lower=1)
        ax_px.hist(share, bins=min(20, max(3, len(cut))), color="C3", edgecolor="white")
    else:
        for ax in (ax_rows, ax_px):
            ax.text(0.5, 0.5, "no image is cut", ha="center", va="center", transform=ax.transAxes)
    ax_rows.set(xlabel="mask rows outside the band", ylabel="cut images")
    ax_rows.set_title("By how many rows (cut images only)")
    ax_px.set(xlabel="mask pixels outside the band (% of the mask)", ylabel="cut images")
    ax_px.set_title("By how many pixels (cut images only)")

    inside = frame["pixels_outside"] == 0
    ax_sc.scatter(
        frame.loc[inside, "box_height"],
        frame.loc[inside, "pixels_outside"],
        s=14,
        color="C2",
        alpha=0.7,
        label="inside band",
    )
    ax_sc.scatter(
        frame.loc[~inside, "box_height"],
        frame.loc[~inside, "pixels_outside"],
        s=18,
        color="C3",
        alpha=0.8,
        label="cut",
    )
    ax_sc.axvline(band, color="C3", ls="--", lw=1, label="tile band height")
    ax_sc.set(xlabel="predicted box height (rows)", ylabel="mask pixels outside the band")
    ax_sc.set_title("Box height against pixels lost")
    ax_sc.legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    for ax in (ax_h, ax_w, ax_n, ax_rows, ax_px):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(
        f"Bounding boxes and the tile band on {len(frame)} validation images "
        f"({100 * stats['share_cut']:.1f}% cut, at most {stats['rows_outside_max']} rows / "
        f"{stats['pixels_outside_max']:,} pixels lost)"
    )
    fig.tight_layout()
    save(fig, out_png)
    return table
