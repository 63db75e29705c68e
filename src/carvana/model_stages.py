"""Workflow stages that train or run models (they import torch; the light stages do not)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from carvana import plots
from carvana.bbox import read_bands
from carvana.data import LowResDataset, cache_if_small
from carvana.device import select_device
from carvana.fullres import TileDataset, collate_tiles, predict_tiles_to_dir
from carvana.io import write_frame, write_json
from carvana.models import count_parameters, create_model, load_compatible_state
from carvana.predict import load_model, predict_to_dir
from carvana.stages import fold_ids, geometry
from carvana.tiling import TileGeometry
from carvana.training import TrainConfig, load_checkpoint, save_checkpoint, seed_everything, train

log = logging.getLogger(__name__)


def train_lowres_stage(name: str, spec: dict[str, Any], data_dir: str, split_csv: str,
                       seed: int, device: str, cpu_fallback: bool, weights: str, history: str,
                       curve: str, summary: str) -> None:
    """Train one low-resolution model on whole images squashed to spec['size']."""
    cfg = TrainConfig.from_dict(spec["train"])
    dev = select_device(device, cpu_fallback)
    size = int(spec["size"])
    train_ids, val_ids = fold_ids(split_csv, "train"), fold_ids(split_csv, "val")
    train_set, val_set = cache_if_small(
        [LowResDataset(data_dir, "train", ids, size) for ids in (train_ids, val_ids)],
        item_bytes=size * size * 4, cache_mb=cfg.cache_mb)
    seed_everything(seed)  # the initial weights too
    model = create_model(spec["arch"], in_channels=3, **spec["params"])
    model.check_input_shape(train_set[0]["image"][None].float())
    log.info("%s: %s, %d parameters, %d train / %d val images at %dx%d on %s", name,
             spec["arch"], count_parameters(model), len(train_set), len(val_set), size, size, dev)
    state, hist, result = train(model, train_set, val_set, cfg, dev, seed)
    meta = {"name": name, "arch": spec["arch"], "in_channels": 3, "params": spec["params"],
            "input": "lowres", "size": size}
    save_checkpoint(weights, state, meta)
    write_frame(hist, history, float_format="%.6f")
    plots.learning_curve(hist, f"{name}: {spec['arch']} at {size}x{size}", curve)
    write_json(summary, {"model": name, **meta, "parameters": count_parameters(model), **result})


def predict_lowres_stage(weights: str, data_dir: str, split: str, ids: list[str], out_dir: str,
                         batch_size: int, tta_hflip: bool, device: str, cpu_fallback: bool,
                         timing: str | None = None) -> None:
    """Predict ``ids`` of ``split`` ('train' or 'test') with a low-res model into ``out_dir``."""
    dev = select_device(device, cpu_fallback)
    model, meta = load_model(weights, dev)
    dataset = LowResDataset(data_dir, split, ids, int(meta["size"]), with_masks=False)
    stats = predict_to_dir(model, dataset, out_dir, dev, batch_size, tta_hflip)
    if timing:
        write_json(timing, {"model": meta["name"], "split": split, **stats})


def _tile_dataset(data_dir: str, split: str, ids: list[str], boxes_csvs: list[str],
                  geom: TileGeometry, with_masks: bool, depth_dir: str | None) -> TileDataset:
    return TileDataset(data_dir, split, ids, read_bands(boxes_csvs), geom, with_masks, depth_dir)


def train_tiles_stage(name: str, spec: dict[str, Any], data_dir: str, split_csv: str,
                      ingest_json: str, boxes_csv: str, tiles: dict[str, Any],
                      depth_dir: str | None, init_weights: str | None, seed: int, device: str,
                      cpu_fallback: bool, weights: str, history: str, curve: str,
                      summary: str) -> None:
    """Train a model on full-resolution tiles (3 channels, or 4 with a depth channel)."""
    cfg = TrainConfig.from_dict(spec["train"])
    dev = select_device(device, cpu_fallback)
    geom = geometry(ingest_json, tiles)
    in_channels = 4 if depth_dir else 3
    train_ids, val_ids = fold_ids(split_csv, "train"), fold_ids(split_csv, "val")
    sets = cache_if_small(
        [_tile_dataset(data_dir, "train", ids, [boxes_csv], geom, True, depth_dir)
         for ids in (train_ids, val_ids)],
        item_bytes=2 * geom.tile * geom.tile * (in_channels + 1), cache_mb=cfg.cache_mb)
    seed_everything(seed)  # the initial weights too
    model = create_model(spec["arch"], in_channels=in_channels, **spec["params"])
    model.check_input_shape(torch.zeros(1, in_channels, geom.tile, geom.tile))
    if init_weights:
        state, _ = load_checkpoint(init_weights)
        skipped = load_compatible_state(model, state)
        log.info("initialised from %s (%d tensors not loaded)", init_weights, len(skipped))
    log.info("%s: %s, %d parameters, %d channels, tiles %dx%d (overlap %d) of %dx%d images, "
             "%d train / %d val images on %s", name, spec["arch"], count_parameters(model),
             in_channels, geom.tile, geom.tile, geom.overlap, geom.width, geom.height,
             len(train_ids), len(val_ids), dev)
    state, hist, result = train(model, sets[0], sets[1], cfg, dev, seed, collate_fn=collate_tiles)
    meta = {"name": name, "arch": spec["arch"], "in_channels": in_channels,
            "params": spec["params"], "input": "tiles", "tile": geom.tile,
            "depth_from": spec.get("depth_from"), "init_from": spec.get("init_from")}
    save_checkpoint(weights, state, meta)
    write_frame(hist, history, float_format="%.6f")
    plots.learning_curve(hist, f"{name}: {spec['arch']} on {geom.tile}x{geom.tile} tiles", curve)
    write_json(summary, {"model": name, **meta, "parameters": count_parameters(model), **result})


def predict_tiles_stage(weights: str, data_dir: str, split: str, ids: list[str],
                        boxes_csvs: list[str], ingest_json: str, tiles: dict[str, Any],
                        depth_dir: str | None, out_dir: str, batch_size: int, tta_hflip: bool,
                        device: str, cpu_fallback: bool, timing: str | None = None) -> None:
    """Predict ``ids`` tile by tile and write stitched full-size probability maps."""
    dev = select_device(device, cpu_fallback)
    model, meta = load_model(weights, dev)
    geom = geometry(ingest_json, tiles)
    if meta["tile"] != geom.tile:
        raise ValueError(f"{weights} was trained on {meta['tile']}px tiles, the data needs "
                         f"{geom.tile}px")
    dataset = _tile_dataset(data_dir, split, ids, boxes_csvs, geom, False, depth_dir)
    stats = predict_tiles_to_dir(model, dataset, out_dir, dev, max(1, batch_size // 2), tta_hflip)
    if timing:
        write_json(timing, {"model": meta["name"], "split": split, **stats})
