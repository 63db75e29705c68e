"""Figure 5, the learning curves: one panel per trained model (losses, validation Dice)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from carvana.analysis.common import PathLike, read_table
from carvana.io import DataError, write_frame
from carvana.plots import save

HISTORY_COLUMNS = ["epoch", "phase", "lr", "train_loss", "val_loss", "val_dice", "seconds"]


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


def read_histories(history_csvs: Mapping[str, PathLike]) -> dict[str, pd.DataFrame]:
    """Each model's training history (one row per epoch)."""
    if not history_csvs:
        raise DataError("no training histories given")
    histories = {}
    for model, path in history_csvs.items():
        hist = read_table(path, HISTORY_COLUMNS)
        if hist.empty:
            raise DataError(f"{path}: no epochs")
        histories[model] = hist
    return histories


def learning_curves(
    history_csvs: Mapping[str, PathLike], out_png: PathLike, out_csv: PathLike
) -> pd.DataFrame:
    """One panel per model: train/validation loss (left axis), validation Dice (right axis)."""
    histories = read_histories(history_csvs)
    table = history_table(histories)
    write_frame(table, out_csv, float_format="%.6g")
    n = len(histories)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    legend: dict[str, Artist] = {}
    for ax, (model, hist) in zip(axes.flat, histories.items(), strict=False):
        legend.update({h.get_label(): h for h in _history_panel(ax, model, hist)})
    _shared_legend(fig, legend)
    save(fig, out_png)
    return table


def _history_panel(ax: Axes, model: str, hist: pd.DataFrame) -> list[Artist]:
    """One model: losses on ``ax``, Dice on a twin axis, best epoch dotted, fine-tune shaded.

    Returns the panel's legend handles.
    """
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
    return ax.get_legend_handles_labels()[0] + dice_ax.get_legend_handles_labels()[0]


def _shared_legend(fig: Figure, legend: Mapping[str, Artist]) -> None:
    """The title and one legend for every panel above the grid, then a tight layout below it."""
    fig.suptitle("Learning curves (dotted line: best epoch; shaded: fine-tune phase)")
    fig.legend(
        handles=list(legend.values()),
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()),
        ncol=len(legend),
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
