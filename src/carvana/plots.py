"""Figures a person would rather look at than read (matplotlib, written as PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from carvana.io import atomic_path  # noqa: E402


def save(fig: plt.Figure, path: str | Path) -> None:
    """Write a figure atomically and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def learning_curve(history: pd.DataFrame, title: str, path: str | Path) -> None:
    """Training/validation loss and validation Dice per epoch, fine-tune epochs shaded."""
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(history["epoch"], history["train_loss"], "o-", label="train")
    ax_loss.plot(history["epoch"], history["val_loss"], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (train: the phase's loss; "
                "validation: BCE + 1 - soft Dice)")
    ax_loss.legend()
    ax_dice.plot(history["epoch"], history["val_dice"], "o-", color="C2")
    best = history.loc[history["val_dice"].idxmax()]
    ax_dice.axvline(best["epoch"], color="grey", ls=":", label=f"best {best['val_dice']:.4f}")
    ax_dice.set(xlabel="epoch", ylabel="Dice at model resolution", title="validation Dice")
    ax_dice.legend()
    for ax in (ax_loss, ax_dice):
        tuned = history[history["phase"] == "fine_tune"]
        if len(tuned):
            ax.axvspan(tuned["epoch"].min() - 0.5, tuned["epoch"].max() + 0.5, color="C1",
                       alpha=0.1)
    fig.suptitle(title)
    save(fig, path)

