"""Training loop shared by every model: BCE + soft dice, early stopping on validation dice."""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from carvana.io import atomic_path

log = logging.getLogger(__name__)


@dataclass
class AugmentConfig:
    """Augmentation strengths; 0 switches a transform off."""

    hflip: float = 0.5
    shift: float = 0.06
    scale: float = 0.1
    hue: float = 0.03
    saturation: float = 0.15
    value: float = 0.15


@dataclass
class TrainConfig:
    """Optimisation settings of one model (config `training:` merged with the model's `train:`)."""

    epochs: int = 16
    batch_size: int = 8
    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    fine_tune_epochs: int = 0
    fine_tune_lr_factor: float = 0.1
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    early_stopping_patience: int = 5
    amp: bool = True
    num_workers: int = 0
    cache_mb: int = 2048
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a config mapping; unknown keys are an error."""
        values = dict(values)
        augment = AugmentConfig(**values.pop("augment", {}))
        return cls(augment=augment, **values)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for the DataLoader's shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """BCE + (1 - soft dice) over the batch, as the original (soft dice with smooth 1)."""
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    soft_dice = (2 * inter + smooth) / (prob.sum() + target.sum() + smooth)
    return bce + (1 - soft_dice)


def batch_dice(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Hard Dice per image (1 when both are empty), shape (N,)."""
    pred = (torch.sigmoid(logits.float()) >= threshold).flatten(1)
    truth = (target >= 0.5).flatten(1)
    inter = (pred & truth).sum(1).float()
    total = (pred.sum(1) + truth.sum(1)).float()
    return torch.where(total == 0, torch.ones_like(total), 2 * inter / total.clamp(min=1))


class Augmenter(nn.Module):
    """Batched augmentation on the training device (kornia): flip, shift/scale, HSV-like jitter.

    Geometric transforms move the image, any extra input channels and the mask together;
    colour jitter touches the three RGB channels only.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        super().__init__()
        import kornia.augmentation as K  # imported here: it is slow to import

        geometric: list[nn.Module] = []
        if cfg.hflip > 0:
            geometric.append(K.RandomHorizontalFlip(p=cfg.hflip))
        if cfg.shift > 0 or cfg.scale > 0:
            geometric.append(K.RandomAffine(
                degrees=0.0, translate=(cfg.shift, cfg.shift),
                scale=(1 - cfg.scale, 1 + cfg.scale), padding_mode="reflection", p=1.0))
        self.geometric = (K.AugmentationSequential(*geometric, data_keys=["input", "mask"])
                          if geometric else None)
        self.colour = (K.ColorJiggle(brightness=cfg.value, saturation=cfg.saturation,
                                     hue=cfg.hue, p=1.0)
                       if max(cfg.hue, cfg.saturation, cfg.value) > 0 else None)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (N,C,H,W) float in [0,1], mask (N,1,H,W) float; returns both augmented."""
        if self.geometric is not None:
            image, mask = self.geometric(image, mask)
        if self.colour is not None:
            rgb = self.colour(image[:, :3]).clamp(0, 1)
            image = torch.cat([rgb, image[:, 3:]], 1) if image.shape[1] > 3 else rgb
        return image, (mask >= 0.5).float()


def to_input(batch_image: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (N,C,H,W) -> float [0,1] on the device."""
    x = batch_image.to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """adam | rmsprop | sgd."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: use adam, rmsprop or sgd")


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
             amp: bool) -> tuple[float, float]:
    """Mean loss and mean per-image Dice (threshold 0.5) at the model's resolution."""
    model.eval()
    losses, dices = [], []
    channels_last = device.type == "cuda"
    for batch in loader:
        x = to_input(batch["image"], device, channels_last)
        y = batch["mask"].to(device).float()
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = model(x)
        losses.append(float(bce_dice_loss(logits, y)) * len(x))
        dices.append(batch_dice(logits, y).cpu())
    n = sum(len(d) for d in dices)
    return sum(losses) / max(n, 1), float(torch.cat(dices).mean()) if dices else math.nan


def train(model: nn.Module, train_set: Dataset, val_set: Dataset, cfg: TrainConfig,
          device: torch.device, seed: int, collate_fn: Callable | None = None,
          ) -> tuple[dict[str, torch.Tensor], pd.DataFrame, dict]:
    """Train ``model``; return the best weights (by validation Dice), the history and a summary.

    ``collate_fn`` merges dataset items into a batch (the tile datasets give two tiles an item).
    """
    generator = seed_everything(seed)
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    loader_args = {"num_workers": cfg.num_workers, "pin_memory": cuda,
                   "persistent_workers": cfg.num_workers > 0, "collate_fn": collate_fn}
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=False,
                              generator=generator, **loader_args)
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False, **loader_args)
    augment = Augmenter(cfg.augment).to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and cuda)

    best_state = copy.deepcopy(model.state_dict())
    best = {"val_dice": -1.0, "epoch": 0}
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    phases = [("main", cfg.epochs, cfg.lr)]
    if cfg.fine_tune_epochs:
        phases.append(("fine_tune", cfg.fine_tune_epochs, cfg.lr * cfg.fine_tune_lr_factor))
    epoch = 0
    for phase, n_epochs, lr in phases:
        if phase == "fine_tune":
            model.load_state_dict(best_state)
        optimizer = make_optimizer(cfg.optimizer, model.parameters(), lr, cfg.weight_decay)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience)
        stale = 0
        for _ in range(n_epochs):
            epoch += 1
            t0 = time.perf_counter()
            model.train()
            total, count = 0.0, 0
            bar = tqdm(train_loader, desc=f"epoch {epoch} ({phase})", mininterval=5, leave=True)
            for batch in bar:
                x = to_input(batch["image"], device, cuda)
                y = batch["mask"].to(device, non_blocking=True).float()
                x, y = augment(x, y)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, enabled=cfg.amp and cuda):
                    loss = bce_dice_loss(model(x), y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.detach().item() * len(x)
                count += len(x)
                bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
            val_loss, val_dice = evaluate(model, val_loader, device, cfg.amp)
            plateau.step(val_dice)
            rows.append({"epoch": epoch, "phase": phase, "lr": optimizer.param_groups[0]["lr"],
                         "train_loss": total / max(count, 1), "val_loss": val_loss,
                         "val_dice": val_dice, "seconds": time.perf_counter() - t0})
            log.info("epoch %d %s: train loss %.4f, val loss %.4f, val dice %.5f", epoch, phase,
                     rows[-1]["train_loss"], val_loss, val_dice)
            if val_dice > best["val_dice"]:
                best = {"val_dice": val_dice, "epoch": epoch}
                best_state = copy.deepcopy(model.state_dict())
                stale = 0
            else:
                stale += 1
                if stale >= cfg.early_stopping_patience:
                    log.info("early stopping: no validation gain for %d epochs", stale)
                    break
    seconds = time.perf_counter() - start
    history = pd.DataFrame(rows)
    summary = {"best_val_dice": best["val_dice"], "best_epoch": best["epoch"],
               "epochs_run": epoch, "train_seconds": round(seconds, 2),
               "seconds_per_epoch": round(seconds / max(epoch, 1), 3), "device": str(device)}
    return {k: v.detach().cpu() for k, v in best_state.items()}, history, summary


def save_checkpoint(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write weights plus a JSON-able description of the model (readable with weights_only)."""
    json.dumps(meta)  # fail early on anything weights_only loading would refuse
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint safely (``weights_only=True``): no code is unpickled."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "meta" not in ckpt:
        raise ValueError(f"{path}: not a carvana-pipeline checkpoint")
    return ckpt["state_dict"], ckpt["meta"]
