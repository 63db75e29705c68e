"""The workflow stages that draw (matplotlib): analysis figures and the cut-outs' contact sheet.

Keyword arguments only, named as the rule's inputs, params and outputs (see
``carvana.stages``).
"""

from __future__ import annotations

from pathlib import Path

from carvana import analysis
from carvana.cutouts import collect_cutouts
from carvana.scoring import dice_column, submission_threshold, truth_by_id


def analysis_model_comparison_stage(*, metrics: list[str], train: list[str], png: str,
                                    csv: str) -> None:
    """Validation Dice of every scored model, as a bar chart and a table."""
    analysis.model_comparison(metrics, train, png, csv)


def analysis_ladder_stage(*, metrics: list[str], train: list[str], png: str, csv: str) -> None:
    """Dice of the low-res models against input size, Kaggle's LB beside."""
    analysis.ladder_figure(metrics, train, png, csv)


def analysis_threshold_curves_stage(*, curves: list[str], models: list[str], png: str,
                                    csv: str) -> None:
    """Validation Dice against the binarisation threshold for every scored model."""
    analysis.threshold_curves(dict(zip(models, curves, strict=True)), png, csv)


def analysis_learning_curves_stage(*, histories: list[str], models: list[str], png: str,
                                   csv: str) -> None:
    """Learning curves of every trained model in one grid, and a summary table."""
    analysis.learning_curves(dict(zip(models, histories, strict=True)), png, csv)


def analysis_worst_predictions_stage(*, name: str, per_image: str, preds: str, data_dir: str,
                                     k: int, png: str, csv: str) -> None:
    """A model's k worst validation predictions: image, truth, probability, error overlay."""
    analysis.worst_predictions(name, per_image, preds, data_dir, png, csv, k=k)


def analysis_worst_test_stage(*, name: str, per_image: str, preds: list[str], truth: str,
                              ingest: str, data_dir: str, k: int, threshold: float | str,
                              threshold_choice: str | None = None, png: str, csv: str) -> None:
    """The k worst test photos of source ``name`` against kept truth, at the submission's
    threshold (``preds``: its shard folders)."""
    column = dice_column(name)
    worst = analysis.worst_k_table(per_image, k, column=column, keep=("car",))
    photos = analysis.PhotoSource(Path(data_dir) / "test", truth_by_id(truth, ingest),
                                  [Path(p) for p in preds])
    analysis.worst_photos(worst, photos, png, csv, name=name, what="test", column=column,
                          threshold=submission_threshold(threshold, threshold_choice))


def analysis_bbox_stage(*, cuts: str, png: str, csv: str) -> None:
    """Box sizes, and how often and how much the tile band cuts the validation masks."""
    analysis.bbox_analysis(cuts, png, csv)


def cutouts_collect_stage(*, shards: list[str], stems: list[str], out_dir: str, sheet: str,
                          summary: str) -> None:
    """Every shard's cut-outs into results/cutouts/, one contact sheet, one summary."""
    collect_cutouts(shard_dirs=shards, stems=stems, out_dir=out_dir, contact_sheet_jpg=sheet,
                    summary_csv=summary)
