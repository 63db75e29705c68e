"""One function per light workflow stage: file paths in, file paths out (no torch, no
matplotlib: a test checks ``sys.modules``).

Every stage takes keyword arguments only, named as its rule's inputs, params and outputs;
``scripts/<rule>.py`` calls ``<rule>_stage(**stage_kwargs(snakemake))``. The stages that train
or run models are in ``carvana.model_stages``, the figures in ``carvana.figure_stages``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from carvana.bbox import box_analysis, boxes_from_predictions
from carvana.comparison import comparison_table
from carvana.ensemble import WeightChoice, choose_weights, ensemble_to_dir, full_size_loader
from carvana.evaluation import evaluate_predictions, write_evaluation
from carvana.gates import check_box_fallbacks
from carvana.ingest import ingest
from carvana.io import mask_path, read_json, read_mask, write_frame, write_json
from carvana.oof import fold_split, gather_maps
from carvana.pseudo import pseudo_labels_to_dir
from carvana.scoring import score_test_photos, submission_threshold, truth_by_id
from carvana.split import fold_ids, select_ids, split_by_car
from carvana.submission import check_submission, encode_shard, gather
from carvana.tiling import geometry

log = logging.getLogger(__name__)


# --- data ----------------------------------------------------------------------------------

def synthetic_data_stage(*, synthetic: dict[str, Any], data: str, truth: str,
                         threads: int = 1) -> None:
    """Generate the synthetic data set in the Kaggle layout, its test masks beside it."""
    from carvana.synthetic import SyntheticConfig, generate

    generate(Path(data), Path(truth).parent, SyntheticConfig(**synthetic), threads=threads)


def ingest_stage(*, data_dir: str, train: str, summary: str, threads: int = 1) -> None:
    """Check the whole data folder; write the train table and a summary."""
    ingest(data_dir, train, summary, threads=threads)


def split_stage(*, train: str, val_fraction: float, seed: int, split: str) -> None:
    """Group the train images by car into train and validation folds."""
    folds = split_by_car(pd.read_csv(train, dtype=str), val_fraction, seed)
    write_frame(folds, split)
    log.info("split: %s", folds.groupby("fold")["car"].nunique().to_dict())


def oof_split_stage(*, split: str, k: int, fold: int, folds: str) -> None:
    """Fold ``fold`` of ``k``'s split of the train photos, for out-of-fold low-res maps: the
    held-out cars validate (and are mapped), the others train."""
    table = fold_split(pd.read_csv(split, dtype=str), k, fold)
    write_frame(table, folds)
    held = sorted(table.loc[table["fold"] == "val", "car"].unique())
    log.info("fold %d of %d: %d photos of %s held out", fold, k,
             int((table["fold"] == "val").sum()), ", ".join(held))


def gather_oof_stage(*, split: str, fold_preds: list[str], preds: str) -> None:
    """One folder of maps of every train photo, each from the fold copy that did not see it."""
    ids = fold_ids(split, "all")
    gather_maps(ids, fold_preds, preds)
    log.info("%d out-of-fold maps from %d folds -> %s", len(ids), len(fold_preds), preds)


# --- the full-resolution branch ------------------------------------------------------------

def boxes_stage(*, preds: str, ingest: str, ids: list[str] | None = None,
                split: str | None = None, fold: str | None = None, tiles: dict[str, Any],
                threshold: float, margin: int, max_fallback_fraction: float,
                boxes: str) -> None:
    """Bounding boxes and tile bands of a test shard's ``ids`` or a ``fold`` of the train
    images, from a low-res model's predictions; a gate on boxes that fell back to the frame."""
    chosen = select_ids(ids=ids, split=split, fold=fold)
    frame = boxes_from_predictions(preds, chosen, geometry(ingest, tiles), threshold, margin)
    if frame["empty"].any():
        log.warning("%d images with an empty prediction get a centred band",
                    int(frame["empty"].sum()))
    check_box_fallbacks(frame, preds, max_fallback_fraction)
    write_frame(frame, boxes)


def bbox_cuts_stage(*, boxes: str, data_dir: str, split: str, cuts: str) -> None:
    """How the tile bands cut the true masks of the validation images."""
    frame = box_analysis(pd.read_csv(boxes, dtype={"id": str}), data_dir, fold_ids(split, "val"))
    write_frame(frame, cuts)
    log.info("band cuts %d of %d validation masks", int((frame["pixels_outside"] > 0).sum()),
             len(frame))


def member_weights(members: dict[str, float | None],
                   ensemble_weights: str | None) -> dict[str, float]:
    """The ensemble's weights: as configured, or (None) as chosen on validation."""
    if all(w is not None for w in members.values()):
        return {m: float(w) for m, w in members.items()}
    if not ensemble_weights:
        raise ValueError("weights chosen on validation need results/metrics/"
                         "ensemble_weights.json as an input")
    chosen = read_json(ensemble_weights)["weights"]
    if sorted(chosen) != sorted(members):
        raise ValueError(f"{ensemble_weights}: weights of {sorted(chosen)}, but the ensemble's "
                         f"members are {sorted(members)}: rerun the ensemble_weights rule")
    return {m: float(chosen[m]) for m in members}


def ensemble_stage(*, member_preds: list[str], members: dict[str, float | None], ingest: str,
                   ids: list[str] | None = None, split: str | None = None,
                   fold: str | None = None, ensemble_weights: str | None = None,
                   preds: str) -> None:
    """Weighted average of the members' probabilities (``member_preds`` in ``members`` order)."""
    info = read_json(ingest)
    weights = member_weights(members, ensemble_weights)
    spec = {name: (d, weights[name]) for name, d in zip(members, member_preds, strict=True)}
    ensemble_to_dir(spec, select_ids(ids=ids, split=split, fold=fold),
                    (info["width"], info["height"]), preds)


def _choose_on_val(members: list[str], val_preds: list[str], *, data_dir: str, split: str,
                   size: tuple[int, int], threshold: float, step: float) -> WeightChoice:
    """The members' weights chosen on the validation images (their folders ``val_preds``)."""
    load = full_size_loader(val_preds, size, lambda i: read_mask(mask_path(data_dir, i)))
    return choose_weights(members, fold_ids(split, "val"), load, threshold=threshold, step=step)


def ensemble_weights_stage(*, member_preds: list[str], members: list[str], data_dir: str,
                           split: str, ingest: str, threshold: float, step: float,
                           choice: str, table: str) -> None:
    """The ensemble's weights chosen on the validation images (``carvana.ensemble``)."""
    info = read_json(ingest)
    chosen = _choose_on_val(members, member_preds, data_dir=data_dir, split=split,
                            size=(info["width"], info["height"]), threshold=threshold, step=step)
    write_frame(chosen.table, table, float_format="%.6g")
    write_json(choice, chosen.to_json())
    log.info("ensemble weights %s: validation Dice %.6f (alone: %s)", chosen.weights,
             chosen.dice, ", ".join(f"{m} {d:.6f}" for m, d in chosen.alone.items()))
    for note in chosen.notes():
        log.warning("%s", note)


def pseudo_labels_stage(*, member_preds: list[str], members: dict[str, float | None],
                        ingest: str, ids: list[str], low: float, high: float,
                        member_val: list[str], data_dir: str, split: str, threshold: float,
                        step: float, labels: str, summary: str) -> None:
    """One test shard labelled by the members' average, confident pixels only
    (``carvana.pseudo``); weights as configured, or (None) chosen on the validation images
    from ``member_val`` as the final ensemble's are."""
    info = read_json(ingest)
    size = (info["width"], info["height"])
    chosen = None
    if any(w is None for w in members.values()):
        chosen = _choose_on_val(list(members), member_val, data_dir=data_dir, split=split,
                                size=size, threshold=threshold, step=step)
        members = chosen.weights
    spec = {name: (d, float(members[name]))
            for name, d in zip(members, member_preds, strict=True)}
    stats = pseudo_labels_to_dir(spec, ids, size=size, low=low, high=high, out_dir=labels)
    write_json(summary, {"members": members, "low": low, "high": high, **stats,
                         "val_dice": round(chosen.dice, 6) if chosen else None})
    log.info("pseudo-labels of %d images by %s: %.2f%% of pixels ignored (at most %.2f%% in "
             "one)", stats["images"], members, 100 * stats["ignored_fraction"],
             100 * stats["max_ignored_fraction"])


# --- evaluation ----------------------------------------------------------------------------

def evaluate_stage(*, name: str, preds: str, data_dir: str, split: str, ingest: str,
                   train_summary: str | None = None, metrics: str, per_image: str,
                   thresholds: str) -> None:
    """Score a model's validation predictions at model and full resolution."""
    info = read_json(ingest)
    table, curve = evaluate_predictions(preds, data_dir, fold_ids(split, "val"),
                                        (info["width"], info["height"]))
    extra = {}
    if train_summary:
        t = read_json(train_summary)
        extra = {k: t[k] for k in ("arch", "parameters", "train_seconds", "best_epoch", "size",
                                   "validation_seen") if k in t}
    summary = write_evaluation(table, curve, name, metrics, per_image, thresholds, extra)
    log.info("%s", summary)


def thresholds_stage(*, curves: list[str], models: list[str], setting: float | str,
                     source: str, choice: str) -> None:
    """Every model's best threshold on validation, and the submission's threshold."""
    frames = {name: pd.read_csv(path) for name, path in zip(models, curves, strict=True)}
    best = {n: f.loc[f["dice"].idxmax()] for n, f in frames.items()}
    chosen = float(best[source]["threshold"]) if setting == "best" else float(setting)
    at_05 = {n: float(np.interp(0.5, f["threshold"], f["dice"])) for n, f in frames.items()}
    write_json(choice, {
        "source": source, "setting": setting, "threshold": chosen,
        "best": {n: {"threshold": float(b["threshold"]), "dice": round(float(b["dice"]), 6),
                     "dice_at_0.5": round(at_05[n], 6)} for n, b in best.items()},
    })


def summary_stage(*, metrics: list[str], train: list[str], timing: list[str],
                  scored: list[str], trained: list[str], summary: str) -> None:
    """The model comparison table plus input channels, tile, epochs and prediction time/image."""
    table = comparison_table(metrics, train)
    info = {name: read_json(path) for name, path in zip(trained, train, strict=True)}
    per_image = {name: read_json(path)["seconds_per_image"]
                 for name, path in zip(trained, timing, strict=True)}
    for key in ("in_channels", "tile", "epochs_run", "steps"):
        table[key] = [info.get(m, {}).get(key) for m in table["model"]]
    table["predict_seconds_per_image"] = table["model"].map(per_image).round(4)
    write_frame(table, summary, float_format="%.6g")
    log.info("\n%s", table.to_string(index=False))


# --- the submission ------------------------------------------------------------------------

def encode_shard_stage(*, preds: str, ingest: str, ids: list[str], threshold: float | str,
                       threshold_choice: str | None = None, csv: str) -> None:
    """Threshold and run-length encode one test shard (``best``: the threshold analysis's)."""
    info = read_json(ingest)
    encode_shard(preds, ids=list(ids), size=(info["width"], info["height"]),
                 threshold=submission_threshold(threshold, threshold_choice), out_csv=csv)


def gather_submission_stage(*, shards: list[str], sample: str, submission: str) -> None:
    """The encoded shards as results/submission.csv.gz, in sample_submission order (the gzip is
    byte-identical for equal rows: no file name and mtime 0 in its header)."""
    gather(shards, sample_submission=sample, out_gz=submission)


def check_submission_stage(*, submission: str, ingest: str, sample: str,
                           truth: str | None = None, max_empty_fraction: float,
                           check: str) -> None:
    """Decode the submission back, count empty masks, score it against kept truth; fail (and
    write no JSON) when more than ``max_empty_fraction`` of the masks are empty."""
    info = read_json(ingest)
    check_submission(submission, sample, shape=(info["height"], info["width"]), truth=truth,
                     out_json=check, max_empty_fraction=float(max_empty_fraction))


def score_test_stage(*, preds: list[str], sources: list[str], shards: dict[str, list[str]],
                      truth: str, ingest: str, threshold: float | str,
                      threshold_choice: str | None = None, per_image: str,
                      per_car: str) -> None:
    """Every source's test photos scored against kept truth at the submission's threshold, per
    photo and per car (``preds``: each source's shard folders, source by source)."""
    n = len(shards)
    if len(preds) != n * len(sources):
        raise ValueError(f"{len(preds)} prediction folders for {len(sources)} sources x {n} shards")
    by_source = {s: preds[i * n:(i + 1) * n] for i, s in enumerate(sources)}
    score_test_photos(by_source, shards, truth_by_id(truth, ingest),
                      submission_threshold(threshold, threshold_choice), per_image, per_car)


# --- the prediction chain ------------------------------------------------------------------

def chain_stage(*, settings: dict[str, Any], ingest: str, tiles: dict[str, Any],
                threshold_json: str | None = None, ensemble_weights: str | None = None,
                chain: str) -> None:
    """``results/chain.json``: the chain of the cut-outs' source as ``carvana.segmenter`` runs
    it, with each source's threshold (the setting, or each one's best on validation)."""
    from carvana.workflow import chain_from_settings, ensemble_members

    info = read_json(ingest)
    size = (int(info["width"]), int(info["height"]))
    tile = geometry(ingest, tiles).tile if settings["fullres"] else None
    sources = [*settings["models"], *(["ensemble"] if settings["ensemble"].get("members")
                                      else [])]
    if settings["threshold"] == "best":
        if not threshold_json:
            raise ValueError("threshold 'best' needs results/metrics/threshold.json as an input")
        best = read_json(threshold_json)["best"]
        thresholds = {s: float(best[s]["threshold"]) for s in sources if s in best}
    else:
        thresholds = dict.fromkeys(sources, float(settings["threshold"]))
    members = ensemble_members(settings)
    weights = member_weights(members, ensemble_weights) if members else {}
    described = chain_from_settings(settings, size=size, tile=tile, thresholds=thresholds,
                                    weights=weights)
    write_json(chain, described.to_json())
    log.info("chain of %s: models %s, threshold %g", described.source,
             ", ".join(described.needed()), described.threshold)
