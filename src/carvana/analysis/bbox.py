"""Figure 6, bounding boxes and the tile band: box sizes, and how often and how much the band
cuts the true mask (notebooks 8 and 13), one helper per panel."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from carvana.analysis.common import PathLike, read_table
from carvana.io import DataError, write_frame
from carvana.plots import save

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
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    (ax_h, ax_w, ax_n), (ax_rows, ax_px, ax_sc) = axes
    _height_panel(ax_h, frame, bins=bins, band=band)
    _width_panel(ax_w, frame, bins=bins)
    _cut_count_panel(ax_n, frame, images_cut=int(stats["images_cut"]))
    cut = frame[frame["pixels_outside"] > 0]
    _rows_outside_panel(ax_rows, cut)
    _pixels_outside_panel(ax_px, cut)
    _scatter_panel(ax_sc, frame, band=band)
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


def _height_panel(ax: Axes, frame: pd.DataFrame, *, bins: int, band: float) -> None:
    """Histogram of predicted box heights, the tile band's height marked."""
    edges = _pixel_bins(frame["box_height"], bins)
    ax.hist(frame["box_height"], bins=edges, color="C0", edgecolor="white")
    ax.axvline(band, color="C3", ls="--", label=f"tile band height ({band:.0f} rows, median)")
    ax.set(xlabel="predicted box height (rows, full resolution)", ylabel="images")
    ax.set_title("Box height")
    ax.legend(fontsize=8)


def _width_panel(ax: Axes, frame: pd.DataFrame, *, bins: int) -> None:
    """Histogram of predicted box widths."""
    edges = _pixel_bins(frame["box_width"], bins)
    ax.hist(frame["box_width"], bins=edges, color="C0", edgecolor="white")
    ax.set(xlabel="predicted box width (columns, full resolution)", ylabel="images")
    ax.set_title("Box width")
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")


def _cut_count_panel(ax: Axes, frame: pd.DataFrame, *, images_cut: int) -> None:
    """Bars: images inside the band, cut above, below or on both sides."""
    cut_above = frame["rows_above"] > 0
    cut_below = frame["rows_below"] > 0
    counts = {
        "inside band": int((frame["pixels_outside"] == 0).sum()),
        "cut above only": int((cut_above & ~cut_below).sum()),
        "cut below only": int((cut_below & ~cut_above).sum()),
        "cut both sides": int((cut_above & cut_below).sum()),
    }
    bars = ax.bar(list(counts), list(counts.values()), color=["C2", "C1", "C1", "C3"])
    ax.bar_label(bars)
    ax.margins(y=0.12)
    ax.set_ylabel("validation images")
    ax.set_title(f"Does the band hold the whole mask? ({images_cut} of {len(frame)} cut)")
    ax.tick_params(axis="x", labelsize=8)


def _rows_outside_panel(ax: Axes, cut: pd.DataFrame) -> None:
    """Histogram of mask rows above and below the band, over the cut images."""
    if len(cut):
        above, below = cut.loc[cut["rows_above"] > 0], cut.loc[cut["rows_below"] > 0]
        ax.hist(
            [above["rows_above"], below["rows_below"]],
            bins=min(20, max(3, len(cut))),
            label=[f"above the band ({len(above)})", f"below the band ({len(below)})"],
            color=["C1", "C4"],
        )
        ax.legend(fontsize=8)
    else:
        _nothing_cut(ax)
    ax.set(xlabel="mask rows outside the band", ylabel="cut images")
    ax.set_title("By how many rows (cut images only)")


def _pixels_outside_panel(ax: Axes, cut: pd.DataFrame) -> None:
    """Histogram of the share of the mask outside the band, over the cut images."""
    if len(cut):
        share = 100 * cut["pixels_outside"] / cut["mask_pixels"].clip(lower=1)
        ax.hist(share, bins=min(20, max(3, len(cut))), color="C3", edgecolor="white")
    else:
        _nothing_cut(ax)
    ax.set(xlabel="mask pixels outside the band (% of the mask)", ylabel="cut images")
    ax.set_title("By how many pixels (cut images only)")


def _nothing_cut(ax: Axes) -> None:
    """A note in place of an empty histogram."""
    ax.text(0.5, 0.5, "no image is cut", ha="center", va="center", transform=ax.transAxes)


def _scatter_panel(ax: Axes, frame: pd.DataFrame, *, band: float) -> None:
    """Box height against mask pixels outside the band, cut images in red."""
    inside = frame["pixels_outside"] == 0
    ax.scatter(
        frame.loc[inside, "box_height"],
        frame.loc[inside, "pixels_outside"],
        s=14,
        color="C2",
        alpha=0.7,
        label="inside band",
    )
    ax.scatter(
        frame.loc[~inside, "box_height"],
        frame.loc[~inside, "pixels_outside"],
        s=18,
        color="C3",
        alpha=0.8,
        label="cut",
    )
    ax.axvline(band, color="C3", ls="--", lw=1, label="tile band height")
    ax.set(xlabel="predicted box height (rows)", ylabel="mask pixels outside the band")
    ax.set_title("Box height against pixels lost")
    ax.legend(fontsize=8)
