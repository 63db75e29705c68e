"""Helpers shared by the analysis figures: reading a checked CSV, model labels, zoomed limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carvana.io import DataError

PathLike = str | Path


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
