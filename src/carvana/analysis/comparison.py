"""Figure 1, the model comparison: every scored model's validation Dice as horizontal bars."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from carvana.analysis.common import PathLike, model_label, zoomed_limits
from carvana.comparison import comparison_table
from carvana.io import write_frame
from carvana.plots import save


def model_comparison(
    metrics_paths: Sequence[PathLike],
    train_paths: Sequence[PathLike],
    out_png: PathLike,
    out_csv: PathLike,
) -> pd.DataFrame:
    """Horizontal bars of every model's validation Dice at full resolution, best on top."""
    table = comparison_table(metrics_paths, train_paths)
    write_frame(table, out_csv, float_format="%.6g")
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(table)))
    _dice_bars(ax, table)
    save(fig, out_png)
    return table


def _dice_bars(ax: Axes, table: pd.DataFrame) -> None:
    """The one panel: full-resolution Dice bars, model-resolution diamonds, on a zoomed x-axis."""
    n = len(table)
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
