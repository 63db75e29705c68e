"""Analysis figures and tables for the report, one module per figure:

- ``comparison``: model comparison (every scored model's Dice);
- ``ladder``: the resolution ladder, with Kaggle's public leaderboard beside;
- ``worst``: a model's worst validation (or test) predictions;
- ``thresholds``: Dice against the binarisation threshold;
- ``learning``: learning curves;
- ``bbox``: bounding boxes and the tile band.

Every public figure function reads the files the workflow writes, writes one PNG and one CSV
(atomically) and returns the table it wrote. A missing or malformed input raises ``DataError``
naming the file. Importing this package imports matplotlib; the comparison table alone, without
plotting, is ``carvana.comparison``.
"""

from carvana.analysis.bbox import BBOX_COLUMNS, bbox_analysis, bbox_stats
from carvana.analysis.common import PathLike, model_label, read_table, zoomed_limits
from carvana.analysis.comparison import model_comparison
from carvana.analysis.ladder import KAGGLE_PUBLIC_LB, ladder_figure, ladder_table
from carvana.analysis.learning import HISTORY_COLUMNS, history_table, learning_curves
from carvana.analysis.thresholds import threshold_curves, threshold_table
from carvana.analysis.worst import (
    FN_COLOR,
    FP_COLOR,
    PhotoSource,
    error_overlay,
    train_photos,
    worst_k_table,
    worst_photos,
    worst_predictions,
)
from carvana.comparison import COMPARISON_COLUMNS, comparison_table

__all__ = [
    "BBOX_COLUMNS",
    "COMPARISON_COLUMNS",
    "FN_COLOR",
    "FP_COLOR",
    "HISTORY_COLUMNS",
    "KAGGLE_PUBLIC_LB",
    "PathLike",
    "PhotoSource",
    "bbox_analysis",
    "bbox_stats",
    "comparison_table",
    "error_overlay",
    "history_table",
    "ladder_figure",
    "ladder_table",
    "learning_curves",
    "model_comparison",
    "model_label",
    "read_table",
    "threshold_curves",
    "threshold_table",
    "train_photos",
    "worst_k_table",
    "worst_photos",
    "worst_predictions",
    "zoomed_limits",
]
