"""Figure 2, the resolution ladder: Dice of the low-res models against input size, with Kaggle's
public leaderboard of the original solution on a twin axis."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from carvana.analysis.common import PathLike, zoomed_limits
from carvana.comparison import comparison_table
from carvana.io import DataError, write_frame
from carvana.plots import save

#: Public leaderboard scores of the original solution's low-res U-Nets (real Kaggle data, 2017).
KAGGLE_PUBLIC_LB: dict[int, float] = {128: 0.9908, 256: 0.9942, 512: 0.9958, 1024: 0.9961}


def ladder_table(
    metrics_paths: Sequence[PathLike], train_paths: Sequence[PathLike]
) -> pd.DataFrame:
    """Low-res models (input lowres) by input size (height), with Kaggle's public LB beside.

    One row per size in our ladder or Kaggle's; ``kaggle_public_lb`` is the original solution's
    leaderboard score on the real data, not ours.
    """
    table = comparison_table(metrics_paths, train_paths)
    ours = table[(table["input"] == "lowres") & table["size"].notna()]
    if ours.empty:
        raise DataError(
            "no low-res model among the models given (need input 'lowres' and a size): "
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
    """Dice against input size (log2 axis) for the low-res models, Kaggle's LB on a twin axis."""
    table = ladder_table(metrics_paths, train_paths)
    write_frame(table, out_csv, float_format="%.6g")
    ours = table[table["model"].notna()]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    sizes = _our_dice(ax, ours)
    kag = _kaggle_axis(ax)
    _size_axis(ax, sizes)
    handles = ax.get_legend_handles_labels()[0] + kag.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
    save(fig, out_png)
    return table


def _our_dice(ax: Axes, ours: pd.DataFrame) -> np.ndarray:
    """Our Dice at model and full resolution per size, annotated; returns the sizes."""
    sizes = ours["size"].to_numpy(int)
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
    return sizes


def _kaggle_axis(ax: Axes) -> Axes:
    """Kaggle's public LB of the original solution on a grey twin y-axis of ``ax``."""
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
    return kag


def _size_axis(ax: Axes, sizes: np.ndarray) -> None:
    """A log2 x-axis ticked at our sizes and Kaggle's, with the title and grid."""
    all_sizes = sorted({*sizes.tolist(), *KAGGLE_PUBLIC_LB})
    ax.set_xscale("log", base=2)
    ax.set_xticks(all_sizes, [str(s) for s in all_sizes])
    ax.minorticks_off()
    ax.set_xlim(all_sizes[0] / 1.4, all_sizes[-1] * 1.4)
    ax.set_xlabel("input size of the low-res model (height in pixels, log2 scale)")
    ax.set_title("The resolution ladder: Dice against input size")
    ax.grid(alpha=0.3)
