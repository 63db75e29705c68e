"""Training loop shared by every model: a loss by name (carvana.losses), in optimizer steps.

A run is a budget of optimizer steps (``steps``, or ``epochs`` x steps per epoch), a per-step
learning-rate schedule (linear warm-up, then constant with plateau cuts, cosine, or one-cycle),
validation every epoch or every ``eval_every_steps``, early stopping and plateau cuts only after
``min_steps``, an optionally frozen encoder for the first steps, an optional fine-tune phase at
a lower learning rate (with another loss if asked), and optionally an exponential average of
the weights (``ema``), validated and kept instead of the raw weights. With ``resume_path`` it
writes all it needs to carry on after a kill, atomically: a rerun ends at the same weights.
"""

from __future__ import annotations

import copy
import dataclasses
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
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from carvana.augment import AugmentConfig, Augmenter

# Checkpoint I/O lives in carvana.checkpoint; these names are re-exported for older callers.
from carvana.checkpoint import (  # noqa: F401
    CheckpointError,
    clear_resume,
    load_checkpoint,
    params_hash,
    read_resume,
    rng_state,
    save_checkpoint,
    save_resume,
    set_rng_state,
)
from carvana.device import cpu_bf16_training
from carvana.losses import LOSSES, bce_dice_loss, segmentation_loss, split_labels
from carvana.schedule import (
    SCHEDULES,
    EpochSampler,
    ExponentialAverage,
    Phase,
    Plateau,
    Progress,
    lr_factor,
    plan_phases,
)

# to_input lives in carvana.tensors; predict, fullres and cutouts still import it from here.
from carvana.tensors import to_input

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ["step", "epoch", "phase", "lr", "train_loss", "val_loss", "val_dice",
                   "seconds"]


@dataclass
class TrainConfig:
    """Optimisation settings of one model (config `training:` merged with the model's `train:`).

    Patience counts validations (once per epoch unless ``eval_every_steps``). train() ignores
    ``min_val_dice``, ``crop``, ``crop_edge*`` and ``train_on_val``: the stage code's settings.
    """

    epochs: int = 16
    steps: int | None = None
    batch_size: int = 8
    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "plateau"
    min_lr_factor: float = 0.01
    fine_tune_epochs: int = 0
    fine_tune_lr_factor: float = 0.1
    loss: str = "bce_dice"
    fine_tune_loss: str | None = None  # None: the main phase's loss
    ema: float = 0.0  # decay of an average of the weights that validates and is kept; 0: off
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    early_stopping_patience: int = 5
    min_steps: int = 0
    freeze_encoder_steps: int = 0
    eval_every_steps: int | None = None
    checkpoint_every_steps: int = 50
    min_val_dice: float = 0.5
    crop: int | None = None
    crop_edge: float = 0.0  # crop training: the fraction of windows centred on the car's outline
    crop_edge_lower: float = 0.0  # of those, the fraction centred on its lower edges (the sills)
    train_on_val: bool = False  # a refit: the validation cars train too (validation is then seen)
    amp: bool = True
    cpu_bf16: bool = False
    num_workers: int = 0
    cache_mb: int = 2048
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"training schedule {self.schedule!r}: use {', '.join(SCHEDULES)}")
        for name in ("steps", "eval_every_steps", "crop", "epochs", "batch_size",
                     "checkpoint_every_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"training {name} must be at least 1 (or null), got {value}")
        for name, allowed in (("loss", LOSSES), ("fine_tune_loss", (*LOSSES, None))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"training {name} {getattr(self, name)!r}: use one of "
                                 f"{', '.join(LOSSES)}")
        for name in ("crop_edge", "crop_edge_lower"):
            if not 0.0 <= (value := getattr(self, name)) <= 1.0:
                raise ValueError(f"training {name} is a fraction in [0, 1], got {value}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"training ema is a decay in [0, 1) (0: off), got {self.ema}")
        for name in ("warmup_steps", "min_steps", "freeze_encoder_steps", "fine_tune_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"training {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a config mapping; an unknown key is a TypeError naming it."""
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"unknown training key(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(known))}")
        augment = AugmentConfig(**values.pop("augment", {}))
        return cls(augment=augment, **values)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator seeded likewise."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def batch_dice(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Hard Dice per image (1 when both are empty), shape (N,)."""
    pred = (torch.sigmoid(logits.float()) >= threshold).flatten(1)
    truth = (target >= 0.5).flatten(1)
    inter = (pred & truth).sum(1).float()
    total = (pred.sum(1) + truth.sum(1)).float()
    return torch.where(total == 0, torch.ones_like(total), 2 * inter / total.clamp(min=1))


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """adam | rmsprop | sgd."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: use adam, rmsprop or sgd")


def freeze_encoder(model: nn.Module, frozen: bool) -> None:
    """Freeze or unfreeze ``model.encoder``: requires_grad, and its BatchNorms in eval mode while
    frozen (call after ``model.train()``). Generic: any model with an ``encoder`` submodule."""
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"freeze_encoder_steps needs a model with an `encoder`; "
                         f"{type(model).__name__} has none: set freeze_encoder_steps to 0")
    for param in encoder.parameters():
        param.requires_grad_(not frozen)
    if hasattr(model, "encoder_frozen"):
        model.encoder_frozen = frozen  # SegmentationModel.train() then keeps its BNs in eval
    for module in encoder.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train(model.training and not frozen)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
             amp: bool) -> tuple[float, float]:
    """Mean loss and mean per-image Dice (threshold 0.5) at the model's resolution."""
    model.eval()
    losses, dices = [], []
    for batch in loader:
        x = to_input(batch["image"], device)
        y = batch["mask"].to(device).float()
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = model(x)
        losses.append(float(bce_dice_loss(logits, y)) * len(x))
        dices.append(batch_dice(logits, y).cpu())
    n = sum(len(d) for d in dices)
    return sum(losses) / max(n, 1), float(torch.cat(dices).mean()) if dices else math.nan


class _Trainer:
    """One training run: its loaders, optimizer, schedule, progress and resume file."""

    def __init__(self, model: nn.Module, train_set: Dataset, val_set: Dataset, cfg: TrainConfig,
                 *, device: torch.device, seed: int, collate_fn: Callable | None) -> None:
        if len(train_set) == 0:
            raise ValueError("no training images: check the split (is every car on the "
                             "validation side?)")
        self.model, self.cfg, self.device = model, cfg, device
        self.cuda = device.type == "cuda"
        seed_everything(seed)
        self.shuffle_gen = torch.Generator().manual_seed(seed)  # the epochs' item orders
        self.loader_gen = torch.Generator().manual_seed(seed + 1)  # the DataLoader's seeds
        model.to(device).to(memory_format=torch.channels_last)
        loader_args = {"num_workers": cfg.num_workers, "pin_memory": self.cuda,
                       "persistent_workers": cfg.num_workers > 0, "collate_fn": collate_fn}
        self.sampler = EpochSampler(len(train_set))
        self.train_loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=self.sampler,
                                       generator=self.loader_gen, **loader_args)
        # own generator: validating leaves the global RNG (crops, augmentations) untouched
        self.val_loader = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False,
                                     generator=torch.Generator().manual_seed(seed + 2),
                                     **loader_args)
        self.steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
        self.phases = plan_phases(cfg, self.steps_per_epoch)
        self.augment = Augmenter(cfg.augment).to(device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and self.cuda)
        self.cpu_bf16 = device.type == "cpu" and cpu_bf16_training(cfg.cpu_bf16)
        self.initial_state = copy.deepcopy(model.state_dict())
        self.ema = ExponentialAverage(model.state_dict(), cfg.ema) if cfg.ema else None
        self.best_state = self.initial_state
        self.rows: list[dict[str, Any]] = []
        self.p = Progress()
        self.plateau = Plateau(cfg.plateau_patience, cfg.plateau_factor)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.resume_path: Path | None = None
        self.fingerprint = self.params_hash = ""
        self.resumed_from: int | None = None
        self.started = self.clock = time.perf_counter()
        self.last_lr = cfg.lr

    def start_phase(self, index: int, saved: dict[str, Any] | None = None) -> None:
        """A new optimizer and schedule for phase ``index``; their saved states if resuming."""
        phase = self.phases[index]
        if saved is None:
            if phase.name == "fine_tune":
                self.model.load_state_dict(self.best_state)
                if self.ema is not None:
                    self.ema = ExponentialAverage(self.best_state, self.cfg.ema)
            p = self.p
            p.phase, p.phase_step, p.position, p.stale, p.stopped = index, 0, 0, 0, False
            self.plateau = Plateau(self.cfg.plateau_patience, self.cfg.plateau_factor)
        self.optimizer = make_optimizer(self.cfg.optimizer, self.model.parameters(), phase.lr,
                                        self.cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(
            s, total=phase.steps, warmup=phase.warmup, schedule=phase.schedule,
            min_factor=self.cfg.min_lr_factor) * self.plateau.scale)
        if saved is not None:
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.scaler.load_state_dict(saved["scaler"])

    def run(self, on_step: Callable[[int, nn.Module], None] | None) -> None:
        """Train every phase to its budget (or early stop), then write a final resume file."""
        while self.p.phase < len(self.phases):
            if self.optimizer is None:
                self.start_phase(self.p.phase)
            phase = self.phases[self.p.phase]
            while self.p.phase_step < phase.steps and not self.p.stopped:
                self.run_epoch(phase, on_step)
            self.optimizer = self.scheduler = None
            self.p.phase += 1
        self.save()

    def run_epoch(self, phase: Phase, on_step: Callable[[int, nn.Module], None] | None) -> None:
        """Train (the rest of) one epoch, stopping at the phase's budget or an early stop."""
        p, cfg = self.p, self.cfg
        if p.position == 0:
            p.epoch += 1
            p.order = torch.randperm(len(self.sampler.order), generator=self.shuffle_gen).tolist()
            p.loader_state = self.loader_gen.get_state()
        self.sampler.order, self.sampler.start = p.order, p.position * cfg.batch_size
        self.loader_gen.set_state(p.loader_state)  # a resumed epoch's loader seeds as before
        bar = tqdm(self.train_loader, desc=f"epoch {p.epoch} ({phase.name})", mininterval=5,
                   total=self.steps_per_epoch, initial=p.position)
        for batch in bar:
            loss = self.train_step(batch)
            p.position += 1
            epoch_end = p.position == self.steps_per_epoch
            p.position = 0 if epoch_end else p.position
            budget_end = p.phase_step >= phase.steps
            due = (p.phase_step % cfg.eval_every_steps == 0 if cfg.eval_every_steps
                   else epoch_end)
            if due or budget_end:
                self.validate(phase)
            if due or budget_end or p.step % cfg.checkpoint_every_steps == 0:
                self.save()
            if on_step is not None:
                on_step(p.step, self.model)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if budget_end or p.stopped:
                break
        bar.close()

    def train_step(self, batch: dict[str, Any]) -> float:
        """One optimizer step (encoder frozen for the first freeze_encoder_steps); its loss."""
        cfg, p = self.cfg, self.p
        self.model.train()
        if cfg.freeze_encoder_steps:
            freeze_encoder(self.model, p.step < cfg.freeze_encoder_steps)
        x = to_input(batch["image"], self.device)
        y = batch["mask"].to(self.device, non_blocking=True).float()
        y, ignored = split_labels(y)
        x, y = self.augment(x, y)
        x = x.contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = segmentation_loss(self.phases[p.phase].loss, self.model(x), y[:, :1],
                                     valid=y[:, 1:] if ignored else None)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model.state_dict())
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        p.step, p.phase_step = p.step + 1, p.phase_step + 1
        value = loss.detach().item()
        p.loss_sum, p.loss_count = p.loss_sum + value * len(x), p.loss_count + len(x)
        return value

    def autocast(self) -> torch.autocast:
        """The training step's mixed precision: float16 on CUDA with ``amp``, bfloat16 on the
        CPU with ``cpu_bf16`` where it is native (float32 where emulated). Validation stays in
        float32 (its Dice is what the gate judges)."""
        if self.cuda:
            return torch.autocast("cuda", enabled=self.cfg.amp)
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cpu_bf16)

    def validate(self, phase: Phase) -> None:
        """Validate; a history row, best weights, plateau cut and early stop (after min_steps)."""
        cfg, p = self.cfg, self.p
        val_loss, val_dice = self.evaluate()
        may_act = p.step >= cfg.min_steps
        if cfg.schedule == "plateau" and self.plateau.update(val_dice, may_cut=may_act):
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                   strict=True):
                group["lr"] = base * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
            log.info("validation Dice on a plateau: learning rate cut to %.3g",
                     self.optimizer.param_groups[0]["lr"])
        now, spe = time.perf_counter(), self.steps_per_epoch
        row = {"step": p.step, "epoch": round(p.epoch - 1 + (p.position or spe) / spe, 4),
               "phase": phase.name, "lr": self.last_lr,
               "train_loss": p.loss_sum / max(p.loss_count, 1), "val_loss": val_loss,
               "val_dice": val_dice, "seconds": now - self.clock}
        self.rows.append(row)
        self.clock, p.loss_sum, p.loss_count = now, 0.0, 0
        log.info("step %d (epoch %.2f, %s): train loss %.4f, val loss %.4f, val dice %.5f",
                 p.step, row["epoch"], phase.name, row["train_loss"], val_loss, val_dice)
        if val_dice > p.best_dice:
            p.best_dice, p.best_step, p.best_epoch = val_dice, p.step, row["epoch"]
            self.best_state = copy.deepcopy(self.ema.state if self.ema is not None
                                            else self.model.state_dict())
            p.stale = 0
        else:
            p.stale += 1
            if p.stale >= cfg.early_stopping_patience and may_act:
                log.info("early stopping: no validation gain for %d validations", p.stale)
                p.stopped = True

    def evaluate(self) -> tuple[float, float]:
        """Validation loss and Dice of the weights this run keeps: the average's with ``ema``."""
        if self.ema is None:
            return evaluate(self.model, self.val_loader, self.device, self.cfg.amp)
        raw = copy.deepcopy(self.model.state_dict())
        self.model.load_state_dict(self.ema.state)
        try:
            return evaluate(self.model, self.val_loader, self.device, self.cfg.amp)
        finally:
            self.model.load_state_dict(raw)

    def elapsed(self) -> float:
        """Training seconds, earlier killed processes included."""
        return self.p.seconds + time.perf_counter() - self.started

    def save(self) -> None:
        """Write the resume file (if any) atomically: everything needed to carry on."""
        if self.resume_path is None:
            return
        progress = {**dataclasses.asdict(self.p), "seconds": self.elapsed()}
        save_resume(self.resume_path, {
            "fingerprint": self.fingerprint, "params_hash": self.params_hash,
            "model": self.model.state_dict(), "best_state": self.best_state,
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(), "plateau": dataclasses.asdict(self.plateau),
            "progress": progress, "history": self.rows,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {**rng_state(), "shuffle": self.shuffle_gen.get_state(),
                    "loader": self.loader_gen.get_state()}})

    def restore(self, saved: dict[str, Any]) -> None:
        """Carry on from a resume file's state (any error leaves the caller to start afresh)."""
        self.model.load_state_dict(saved["model"])
        self.best_state = saved["best_state"]
        self.rows = list(saved["history"])
        if self.ema is not None:
            self.ema.load_state_dict(saved["ema"])
        self.p = Progress(**saved["progress"])
        self.plateau = Plateau(**saved["plateau"])
        if self.p.phase < len(self.phases):
            self.start_phase(self.p.phase, saved)
        self.shuffle_gen.set_state(saved["rng"]["shuffle"])
        self.loader_gen.set_state(saved["rng"]["loader"])
        set_rng_state(saved["rng"])
        self.resumed_from = self.p.step
        self.started = self.clock = time.perf_counter()

    def result(self) -> tuple[dict[str, torch.Tensor], pd.DataFrame, dict[str, Any]]:
        """Best weights (CPU, contiguous), the history and a summary."""
        if self.cfg.freeze_encoder_steps:
            freeze_encoder(self.model, False)
        p, seconds = self.p, self.elapsed()
        summary = {"best_val_dice": p.best_dice, "best_epoch": p.best_epoch,
                   "best_step": p.best_step, "steps": p.step, "epochs_run": p.epoch,
                   "steps_per_epoch": self.steps_per_epoch, "train_seconds": round(seconds, 2),
                   "seconds_per_epoch": round(seconds / max(p.epoch, 1), 3),
                   "seconds_per_step": round(seconds / max(p.step, 1), 4),
                   "resumed_from_step": self.resumed_from, "device": str(self.device)}
        state = {k: v.detach().cpu().contiguous() for k, v in self.best_state.items()}
        return state, pd.DataFrame(self.rows, columns=HISTORY_COLUMNS), summary


def _fingerprint(cfg: TrainConfig, seed: int, caller_hash: str, train_set: Dataset,
                 val_set: Dataset) -> str:
    """The resume file's key: the caller's hash, every training setting, the seed, set sizes."""
    return params_hash({"caller": caller_hash, "train": dataclasses.asdict(cfg), "seed": seed,
                        "n_train": len(train_set), "n_val": len(val_set)})


@dataclass(frozen=True)
class TrainData:
    """What a model trains and validates on; ``collate_fn`` merges items into a batch (the
    tile datasets give two tiles an item)."""

    train: Dataset
    val: Dataset
    collate_fn: Callable | None = None


@dataclass(frozen=True)
class Resume:
    """Where a run keeps its resume file, and the caller's hash of what it trains (model spec,
    data, seed): a file made with another hash is not resumed from."""

    path: str | Path
    params_hash: str = ""


def train(model: nn.Module, data: TrainData, cfg: TrainConfig, device: torch.device,
          seed: int, *, resume: Resume | None = None,
          on_step: Callable[[int, nn.Module], None] | None = None,
          ) -> tuple[dict[str, torch.Tensor], pd.DataFrame, dict[str, Any]]:
    """Train ``model``; return the best weights (by validation Dice), the history, a summary.

    With ``resume``, the run's whole state is written to ``resume.path`` atomically at every
    validation, every ``checkpoint_every_steps`` steps and at the end; a run that finds a file
    there made with the same ``params_hash`` (and training settings, seed and set sizes)
    carries on from it, else it starts afresh and logs why. train() never deletes it: call
    ``clear_resume(resume.path)`` once the final weights are written. ``on_step(step, model)``
    is called after every optimizer step (and its validation and checkpoint, if any).
    """
    resume_path = resume.path if resume else None
    caller_hash = resume.params_hash if resume else ""

    def fresh() -> _Trainer:
        return _Trainer(model, data.train, data.val, cfg, device=device, seed=seed,
                        collate_fn=data.collate_fn)

    trainer = fresh()
    fingerprint = _fingerprint(cfg, seed, caller_hash, data.train, data.val)
    saved = read_resume(resume_path, fingerprint) if resume_path is not None else None
    if saved is not None:
        try:
            trainer.restore(saved)
            log.info("%s: resuming from step %d (epoch %d)", resume_path, trainer.p.step,
                     trainer.p.epoch)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            log.warning("%s: cannot resume from it (%s); starting afresh", resume_path, err)
            model.load_state_dict(trainer.initial_state)
            trainer = fresh()
    trainer.resume_path = Path(resume_path) if resume_path is not None else None
    trainer.fingerprint, trainer.params_hash = fingerprint, caller_hash
    trainer.run(on_step)
    return trainer.result()
