"""Workflow stages that train or run models (they import torch; the light stages do not).

Every stage takes keyword arguments only, named as the rule's inputs, params and outputs
(``scripts/*.py`` pass them with ``carvana.snake.stage_kwargs``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset

from carvana.backends import BackendSpec
from carvana.bbox import read_bands, read_box_rows
from carvana.bundle import file_sha256
from carvana.chain import lowres_hw
from carvana.checkpoint import clear_resume, load_checkpoint, params_hash, save_checkpoint
from carvana.cutouts import cutouts_shard
from carvana.data import LowResDataset, cache_if_small
from carvana.device import select_device
from carvana.fullres import RandomCrops, TileDataset, collate_tiles, depth_fill, stitch_writer
from carvana.gates import check_val_dice
from carvana.io import write_frame, write_json
from carvana.models import count_parameters, create_model, load_compatible_state
from carvana.predict import load_model, predict_to_dir
from carvana.split import fold_ids, select_ids, thin_to_share
from carvana.tiling import TileGeometry, geometry
from carvana.training import Resume, TrainConfig, TrainData, seed_everything, train

log = logging.getLogger(__name__)


def _expected(name: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What a checkpoint of model ``name`` built from ``spec`` must say about itself."""
    return {"name": name, "arch": spec["arch"], "params": spec["params"], **extra}


def _folds(name: str, split: str, cfg: TrainConfig) -> tuple[list[str], list[str]]:
    """The training and validation images; with ``train_on_val`` (a refit) the validation cars
    train too, so validation scores cars the model has seen: it still stops a model that learned
    nothing, but it no longer measures generalisation."""
    train_ids, val_ids = fold_ids(split, "train"), fold_ids(split, "val")
    if cfg.train_on_val:
        log.warning("%s: train_on_val: the %d validation images train too; validation now "
                    "scores seen cars (a refit)", name, len(val_ids))
        train_ids = train_ids + val_ids
    return train_ids, val_ids


def _finish(*, name: str, model: torch.nn.Module, result: tuple, cfg: TrainConfig,
            meta: dict[str, Any], title: str, resume: str | None, weights: str, history: str,
            curve: str, summary: str) -> None:
    """Gate the trained model, then write weights, history, curve and summary; drop the resume
    file. A model below ``min_val_dice`` writes nothing (its resume file stays for a rerun)."""
    state, hist, info = result
    check_val_dice(name, info["best_val_dice"], cfg.min_val_dice, info.get("steps", 0))
    save_checkpoint(weights, state, meta)
    write_frame(hist, history, float_format="%.6f")
    from carvana import plots  # matplotlib: only when a model has trained, not in every job

    plots.learning_curve(hist, title, curve)
    write_json(summary, {"model": name, **meta, "parameters": count_parameters(model), **info,
                         "validation_seen": cfg.train_on_val})
    if resume:
        clear_resume(resume)


def _as_list(value: str | list[str]) -> list[str]:
    """A rule's list of files as a list (Snakemake passes a single one as a str)."""
    return [value] if isinstance(value, str) else list(value)


def _label_ids(folder: str) -> list[str]:
    """The test photos a folder of pseudo-labels labels (an error when it labels none)."""
    ids = sorted(p.stem for p in Path(folder).glob("*.png"))
    if not ids:
        raise ValueError(f"{folder}: no pseudo-labels")
    return ids


def _pseudo_ids(spec: dict[str, Any], labels: list[str], own: int) -> list[list[str]]:
    """Each pseudo-label folder's test photos, thinned to the round's ``max_share`` of a
    training set with ``own`` train photos (:func:`carvana.split.thin_to_share`)."""
    every = [_label_ids(folder) for folder in labels]
    share = (spec.get("pseudo") or {}).get("max_share")
    kept = thin_to_share(every, own=own, max_share=share)
    n_kept, n_all = sum(map(len, kept)), sum(map(len, every))
    if n_kept < n_all:
        log.info("pseudo-labels: %d of %d labelled test photos train (max_share %g of the "
                 "training set, beside %d train photos)", n_kept, n_all, share, own)
    return kept


def _pseudo_lowres(data_dir: str, size: Any, labels: list[str],
                   ids: list[list[str]]) -> list[LowResDataset]:
    """One dataset per test shard of pseudo-labels, its photos and labels resized to ``size``."""
    return [LowResDataset(data_dir, "test", shard_ids, size, labels_dir=folder)
            for folder, shard_ids in zip(labels, ids, strict=True) if shard_ids]


def train_lowres_stage(*, name: str, spec: dict[str, Any], data_dir: str, split: str,
                       seed: int, device: str, cpu_fallback: bool, resume: str | None,
                       weights: str, history: str, curve: str, summary: str,
                       init: str | None = None, pseudo_labels: str | list[str] = ()) -> None:
    """Train one low-resolution model on whole images resized to spec['size'], from ``init``'s
    weights (an earlier ladder model's, at any size: the network is fully convolutional) when
    the spec names one in ``init_from``. With ``pseudo_labels`` (a folder per test shard) the
    test photos' confident pixels train too; validation stays on train cars."""
    cfg = TrainConfig.from_dict(spec["train"])
    dev = select_device(device, cpu_fallback)
    height, width = lowres_hw(spec["size"])
    train_ids, val_ids = _folds(name, split, cfg)
    labels = _as_list(pseudo_labels)
    pseudo = _pseudo_lowres(data_dir, spec["size"], labels,
                            _pseudo_ids(spec, labels, len(train_ids)))
    own = LowResDataset(data_dir, "train", train_ids, spec["size"])
    train_set, val_set = cache_if_small(
        [ConcatDataset([own, *pseudo]) if pseudo else own,
         LowResDataset(data_dir, "train", val_ids, spec["size"])],
        item_bytes=height * width * 4, cache_mb=cfg.cache_mb)
    pseudo_ids = [i for d in pseudo for i in d.ids]
    seed_everything(seed)  # the initial weights too
    model = create_model(spec["arch"], in_channels=3, **spec["params"])
    model.check_input_shape(train_set[0]["image"][None].float())
    _init_from(model, init, spec, strict=True)
    log.info("%s: %s, %d parameters, %d train / %d val images at %dx%d on %s", name,
             spec["arch"], count_parameters(model), len(train_ids), len(val_ids), width, height,
             dev)
    if pseudo_ids:
        log.info("%s: plus %d pseudo-labelled test images", name, len(pseudo_ids))
    hashed = params_hash({"spec": spec, "seed": seed, "train": train_ids, "val": val_ids,
                          **({"pseudo": pseudo_ids} if pseudo_ids else {}), **_start_digest(init)})
    result = train(model, TrainData(train_set, val_set), cfg, dev, seed,
                   resume=Resume(resume, hashed) if resume else None)
    meta = {"name": name, "arch": spec["arch"], "in_channels": 3, "params": spec["params"],
            "input": "lowres", "size": spec["size"], "params_hash": hashed}
    _finish(name=name, model=model, result=result, cfg=cfg, meta=meta, resume=resume,
            title=f"{name}: {spec['arch']} at {width}x{height}", weights=weights,
            history=history, curve=curve, summary=summary)


def _graph_cache(weights: str) -> Path:
    """Where a model's ONNX graphs go once exported (onnxruntime, openvino), beside its weights:
    every later prediction job on the same weights reuses them instead of exporting again
    (named by the weights' fingerprint and the input shape; written atomically)."""
    return Path(weights).parent / "onnx"


def predict_lowres_stage(*, name: str, spec: dict[str, Any], weights: str, data_dir: str,
                         folder: str, ids: list[str] | None = None, split: str | None = None,
                         fold: str | None = None, batch_size: int, tta_hflip: bool,
                         backend: str, precision: str, device: str, cpu_fallback: bool,
                         preds: str, timing: str) -> None:
    """Predict a test shard's ``ids`` or a ``fold`` of the train images (images read from
    ``folder``: 'train' or 'test') with a low-res model, on ``backend`` at ``precision``."""
    dev = select_device(device, cpu_fallback)
    model, meta = load_model(weights, dev, _expected(name, spec, input="lowres",
                                                     size=spec["size"]))
    chosen = select_ids(ids=ids, split=split, fold=fold)
    dataset = LowResDataset(data_dir, folder, chosen, meta["size"], with_masks=False)
    stats = predict_to_dir(model, dataset, preds, dev, batch_size=batch_size, tta_hflip=tta_hflip,
                           spec=BackendSpec(backend=backend, precision=precision),
                           cache_dir=_graph_cache(weights))
    write_json(timing, {"model": name, "folder": folder, **stats})


def _tile_dataset(data_dir: str, split: str, ids: list[str], boxes_csvs: list[str],
                  geom: TileGeometry, with_masks: bool, depth_dir: str | None) -> TileDataset:
    return TileDataset(data_dir, split, ids, read_bands(boxes_csvs), geom, with_masks, depth_dir)


def _start_digest(init: str | None) -> dict[str, str]:
    """The starting weights' sha256 as part of a run's resume key (nothing without them): a
    resume file made from other starting weights (the model ``init_from`` names retrained
    since) is not resumed from."""
    return {"init": file_sha256(init)} if init else {}


def _init_from(model: torch.nn.Module, init: str | None, spec: dict[str, Any], *,
               strict: bool = False) -> None:
    """Start from another model's weights (checked to be that model), widening 3 -> 4 channels
    for a depth model; ``strict``: every tensor must fit (the same network, another size)."""
    if not init:
        if spec.get("init_from"):
            raise ValueError(f"init_from: {spec['init_from']!r} but no weights were given")
        return
    state, _ = load_checkpoint(init, {"name": spec["init_from"]})
    skipped = load_compatible_state(model, state)
    if strict and skipped:
        raise ValueError(f"init_from: {len(skipped)} tensors of {init} do not fit this network "
                         f"(first: {skipped[0]}); a ladder model starts only from one with the "
                         "same arch and params")
    log.info("initialised from %s (%d tensors not loaded)", init, len(skipped))


def _pseudo_sets(data_dir: str, geom: TileGeometry, ids: list[list[str]], labels: list[str],
                 boxes: list[str], depth: list[str]) -> list[TileDataset]:
    """One dataset per test shard of pseudo-labels (its label folder, boxes, depth folder)."""
    if len(labels) != len(boxes) or (depth and len(depth) != len(labels)):
        raise ValueError("pseudo-labels: one label folder, box file (and depth folder) a shard")
    return [TileDataset(data_dir, "test", ids[k], read_bands([shard_boxes]), geom,
                        True, depth[k] if depth else None, labels_dir=folder)
            for k, (folder, shard_boxes) in enumerate(zip(labels, boxes, strict=True))
            if ids[k]]


def train_tiles_stage(*, name: str, spec: dict[str, Any], data_dir: str, split: str,
                      ingest: str, boxes: str, tiles: dict[str, Any], depth: str | None = None,
                      init: str | None = None, seed: int, device: str, cpu_fallback: bool,
                      resume: str | None, weights: str, history: str, curve: str,
                      summary: str, pseudo_labels: list[str] = (),
                      pseudo_boxes: list[str] = (), pseudo_depth: list[str] = ()) -> None:
    """Train a model on full-resolution tiles (3 channels, or 4 with a depth channel), on
    random ``train: crop`` windows of them when set (validation on whole tiles). With
    ``pseudo_labels`` (a folder per test shard) the test photos' confident pixels train too;
    validation stays on train cars (held out unless ``train_on_val``), never pseudo-labels."""
    cfg = TrainConfig.from_dict(spec["train"])
    dev = select_device(device, cpu_fallback)
    geom = geometry(ingest, tiles)
    in_channels = 4 if depth else 3
    train_ids, val_ids = _folds(name, split, cfg)
    labels = _as_list(pseudo_labels)
    pseudo = _pseudo_sets(data_dir, geom, _pseudo_ids(spec, labels, len(train_ids)), labels,
                          *(_as_list(v) for v in (pseudo_boxes, pseudo_depth)))
    own = _tile_dataset(data_dir, "train", train_ids, [boxes], geom, True, depth)
    sets = cache_if_small(
        [ConcatDataset([own, *pseudo]) if pseudo else own,
         _tile_dataset(data_dir, "train", val_ids, [boxes], geom, True, depth)],
        item_bytes=2 * geom.tile * geom.tile * (in_channels + 1), cache_mb=cfg.cache_mb)
    pseudo_ids = [i for d in pseudo for i in d.ids]
    seed_everything(seed)  # the initial weights too
    model = create_model(spec["arch"], in_channels=in_channels, **spec["params"])
    model.check_input_shape(torch.zeros(1, in_channels, cfg.crop or geom.tile,
                                        cfg.crop or geom.tile))
    _init_from(model, init, spec)
    log.info("%s: %s, %d parameters, %d channels, tiles %dx%d (overlap %d, training crops %s) "
             "of %dx%d images, %d train / %d val images on %s", name, spec["arch"],
             count_parameters(model), in_channels, geom.tile, geom.tile, geom.overlap,
             cfg.crop or "none", geom.width, geom.height, len(train_ids), len(val_ids), dev)
    if pseudo_ids:
        log.info("%s: plus %d pseudo-labelled test images", name, len(pseudo_ids))
    hashed = params_hash({"spec": spec, "seed": seed, "tiles": tiles, "tile": geom.tile,
                          "train": train_ids, "val": val_ids,
                          **({"pseudo": pseudo_ids} if pseudo_ids else {}), **_start_digest(init)})
    train_set = (RandomCrops(sets[0], cfg.crop, cfg.crop_edge, cfg.crop_edge_lower)
                 if cfg.crop else sets[0])
    result = train(model, TrainData(train_set, sets[1], collate_tiles), cfg, dev, seed,
                   resume=Resume(resume, hashed) if resume else None)
    meta = {"name": name, "arch": spec["arch"], "in_channels": in_channels,
            "params": spec["params"], "input": "tiles", "tile": geom.tile,
            "depth_from": spec.get("depth_from"), "init_from": spec.get("init_from"),
            "crop": cfg.crop, "params_hash": hashed}
    _finish(name=name, model=model, result=result, cfg=cfg, meta=meta, resume=resume,
            title=f"{name}: {spec['arch']} on {geom.tile}x{geom.tile} tiles", weights=weights,
            history=history, curve=curve, summary=summary)


def predict_tiles_stage(*, name: str, spec: dict[str, Any], weights: str, data_dir: str,
                        folder: str, ids: list[str] | None = None, split: str | None = None,
                        fold: str | None = None, boxes: str, ingest: str,
                        tiles: dict[str, Any], depth: str | None = None, batch_size: int,
                        tta_hflip: bool, backend: str, precision: str, device: str,
                        cpu_fallback: bool, preds: str, timing: str) -> None:
    """Predict a test shard's ``ids`` or a ``fold`` of the train images tile by tile and write
    stitched full-size probability maps. ``batch_size`` counts images (two tiles each)."""
    dev = select_device(device, cpu_fallback)
    geom = geometry(ingest, tiles)
    model, _ = load_model(weights, dev, _expected(
        name, spec, input="tiles", tile=geom.tile, in_channels=4 if depth else 3))
    chosen = select_ids(ids=ids, split=split, fold=fold)
    dataset = _tile_dataset(data_dir, folder, chosen, [boxes], geom, False, depth)
    fill = depth_fill(depth, dataset.bands, read_box_rows([boxes]), geom) if depth else None
    stats = predict_to_dir(model, dataset, preds, dev, batch_size=batch_size, tta_hflip=tta_hflip,
                           collate_fn=collate_tiles,
                           write=stitch_writer(dataset.bands, geom, fill),
                           spec=BackendSpec(backend=backend, precision=precision),
                           cache_dir=_graph_cache(weights))
    write_json(timing, {"model": name, "folder": folder, **stats})


def cutouts_shard_stage(*, photos: dict[str, str], chain: str, device: str,
                        max_empty_fraction: float, cutouts: str) -> None:
    """One shard of a person's photos through ``results/chain.json`` (masks, RGBA PNGs)."""
    cutouts_shard(photos=photos, chain_json=chain, device=device,
                  max_empty_fraction=max_empty_fraction, out_dir=cutouts)


def export_bundle_stage(*, chain: str, weights: list[str], bundle: str) -> None:
    """The chain of ``results/chain.json`` as a bundle folder that runs anywhere (``weights``:
    the rule's inputs, so a retrained model re-exports; the chain names the files read)."""
    from carvana.export import export_bundle

    del weights

    export_bundle(results=Path(chain).parent, out_dir=bundle)
