"""Quality gates: stop the run, naming what happened and what to try, rather than hand a
useless output downstream (a model that learned nothing, boxes that fell back to the frame)."""

from __future__ import annotations

import pandas as pd


class GateError(RuntimeError):
    """A quality gate stopped the run: an output would be useless (the message says why)."""


def check_val_dice(name: str, best_val_dice: float, min_val_dice: float, steps: int) -> None:
    """GateError when a trained model's best validation Dice is below ``min_val_dice``."""
    if not best_val_dice >= min_val_dice:  # NaN fails too
        raise GateError(
            f"model {name!r} reached a best validation Dice of {best_val_dice:.4f} after {steps} "
            f"optimizer steps, below min_val_dice={min_val_dice}: it learned too little to use, "
            "so its weights were not written. Try more steps (`train: steps`), a pretrained "
            "encoder (arch: efficientnet_unet), a larger input size, or on real photos "
            "configs/carvana-cpu.yaml; see its learning curve in the log.")


def check_box_fallbacks(frame: pd.DataFrame, source: str, max_fraction: float) -> None:
    """GateError when more than ``max_fraction`` of the boxes fell back to the whole frame."""
    n_empty, n = int(frame["empty"].sum()), len(frame)
    if n and n_empty / n > max_fraction:
        examples = ", ".join(frame.loc[frame["empty"], "id"].head(3))
        raise GateError(
            f"{n_empty} of {n} bounding boxes ({n_empty / n:.0%}) fell back to the whole frame "
            f"(no pixel >= threshold in {source}, e.g. {examples}); more than "
            f"bbox.max_fallback_fraction={max_fraction}. The box model predicts no car: check its "
            "validation Dice in results/metrics/, train it longer, lower bbox.threshold, or use "
            "configs/carvana-cpu.yaml on real photos.")
