"""Figure 4, the threshold curves: validation Dice against the binarisation threshold per model,
and the gain over a reference threshold."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from carvana.analysis.common import PathLike, read_table
from carvana.io import DataError, write_frame
from carvana.plots import save

#: The gain panel zooms on the middle thresholds, where the choice is actually made.
GAIN_WINDOW = (0.2, 0.8)


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


def read_curves(threshold_csvs: Mapping[str, PathLike]) -> dict[str, pd.DataFrame]:
    """Each model's threshold curve (threshold, dice), sorted by threshold."""
    if not threshold_csvs:
        raise DataError("no threshold curves given")
    curves = {}
    for model, path in threshold_csvs.items():
        curve = read_table(path, ["threshold", "dice"]).sort_values("threshold")
        if curve.empty:
            raise DataError(f"{path}: no thresholds")
        curves[model] = curve
    return curves


def threshold_curves(
    threshold_csvs: Mapping[str, PathLike],
    out_png: PathLike,
    out_csv: PathLike,
    *,
    reference: float = 0.5,
) -> pd.DataFrame:
    """Validation Dice against the binarisation threshold, every model, best marked."""
    curves = read_curves(threshold_csvs)
    table = threshold_table(curves, reference)
    write_frame(table, out_csv, float_format="%.6g")
    fig, (ax_all, ax_gain) = plt.subplots(1, 2, figsize=(12, 4.5))
    by_model = table.set_index("model")
    _dice_panel(ax_all, curves, by_model=by_model, reference=reference)
    _gain_panel(ax_gain, curves, by_model=by_model, reference=reference)
    save(fig, out_png)
    return table


def _dice_panel(
    ax: Axes, curves: Mapping[str, pd.DataFrame], *, by_model: pd.DataFrame, reference: float
) -> None:
    """Left: every model's Dice against the threshold, its best marked with a star."""
    for i, (model, curve) in enumerate(curves.items()):
        color = f"C{i % 10}"
        top = by_model.loc[model]
        ax.plot(curve["threshold"], curve["dice"], "-", color=color, label=model)
        ax.plot(top["best_threshold"], top["dice_at_best"], "*", color=color, ms=12, mec="k")
    ax.axvline(reference, color="grey", ls=":", lw=1)
    ax.set(
        xlabel="threshold on the probability",
        ylabel="mean validation Dice (full resolution)",
        title="Dice against threshold (★ = best)",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _gain_panel(
    ax: Axes, curves: Mapping[str, pd.DataFrame], *, by_model: pd.DataFrame, reference: float
) -> None:
    """Right: Dice minus Dice at ``reference``, zoomed on ``GAIN_WINDOW``."""
    for i, (model, curve) in enumerate(curves.items()):
        color = f"C{i % 10}"
        top = by_model.loc[model]
        ax.plot(
            curve["threshold"],
            curve["dice"] - top["dice_at_reference"],
            "-",
            color=color,
            label=f"{model}: best t={top['best_threshold']:.2f}, {top['gain']:+.5f}",
        )
        ax.plot(top["best_threshold"], top["gain"], "*", color=color, ms=12, mec="k")
    window = GAIN_WINDOW
    ax.axvline(reference, color="grey", ls=":", lw=1)
    ax.axhline(0, color="grey", lw=1)
    inside = np.concatenate(
        [
            (c["dice"] - by_model.loc[m, "dice_at_reference"])[
                c["threshold"].between(*window)
            ].to_numpy()
            for m, c in curves.items()
        ]
    )
    if inside.size:
        lo, hi = float(inside.min()), float(inside.max())
        span = max(hi - lo, 1e-4)
        ax.set_ylim(lo - 0.1 * span, hi + 0.2 * span)
    ax.set_xlim(*window)
    ax.set(
        xlabel="threshold on the probability",
        ylabel=f"Dice minus Dice at threshold {reference:g}",
        title=f"Gain from tuning the threshold (zoom on {window[0]:g}-{window[1]:g})",
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
