"""The model comparison table: one row per scored model (pandas only, no plotting).

Shared by the summary stage (``carvana.stages``) and the analysis figures (``carvana.analysis``),
so the light stages need not import matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from carvana.io import DataError, read_json

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
    "validation_seen",  # True: the model trained on the validation cars too (train_on_val)
]


def comparison_table(
    metrics_paths: Sequence[str | Path], train_paths: Sequence[str | Path] = ()
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
    # a low-res input of [height, width] is compared by its height (the square ladder's side)
    table["size"] = [s[0] if isinstance(s, list) else s for s in table["size"]]
    table["size"] = table["size"].astype("Int64")
    table["parameters"] = table["parameters"].astype("Int64")
    return table.sort_values(
        ["val_dice_full_res", "model"], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)
