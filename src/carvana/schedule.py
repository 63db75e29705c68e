"""Step budgets: phases, per-step learning-rate factors, plateau cuts, and a run's progress
through its epochs (what a resume file records)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.utils.data import Sampler

SCHEDULES = ("plateau", "cosine", "onecycle")
ONECYCLE_START = 1 / 25  # one-cycle's first learning rate as a fraction of lr (torch's default)
ONECYCLE_RISE = 0.3  # its rise as a share of the budget when warmup_steps is 0


def _cosine(index: int, length: int, floor: float) -> float:
    """1 at ``index`` 0 down to ``floor`` at ``index`` length - 1, along half a cosine."""
    progress = min(1.0, index / max(1, length - 1))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_factor(step: int, *, total: int, warmup: int, schedule: str, min_factor: float) -> float:
    """Learning-rate multiplier for the 0-based optimizer ``step`` of a ``total``-step phase.

    Warm-up: linear, (step + 1) / (warmup + 1). Then ``plateau``: 1 (cut on plateaus
    separately); ``cosine``: down to ``min_factor`` at the last step; ``onecycle``: a cosine rise
    from 1/25 to 1 over ``warmup`` steps (30 % of the budget when 0), then cosine down to
    ``min_factor``. Any other schedule name is constant 1 after the warm-up.
    """
    if schedule == "onecycle":
        rise = warmup or max(1, round(ONECYCLE_RISE * total))
        if step < rise:
            return ONECYCLE_START + (1 - ONECYCLE_START) * 0.5 * (1 - math.cos(math.pi * step / rise))
        return _cosine(step - rise, total - rise, min_factor)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "cosine":
        return _cosine(step - warmup, total - warmup, min_factor)
    return 1.0


@dataclass
class Plateau:
    """ReduceLROnPlateau on validation Dice (mode max, relative threshold 1e-4) as an lr scale."""

    patience: int
    factor: float
    best: float = -math.inf
    bad: int = 0
    scale: float = 1.0

    def update(self, value: float, *, may_cut: bool) -> bool:
        """Record a validation Dice; True when the learning rate is cut."""
        if value > self.best * (1 + 1e-4):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.bad > self.patience and may_cut:
            self.scale *= self.factor
            self.bad = 0
            return True
        return False


@dataclass(frozen=True)
class Phase:
    """A stretch of training with one optimizer: ``main``, then optionally ``fine_tune``."""

    name: str
    steps: int
    lr: float
    schedule: str
    warmup: int
    loss: str = "bce_dice"


class PhaseSettings(Protocol):
    """What ``plan_phases`` reads of a ``carvana.training.TrainConfig`` (no upward import)."""

    steps: int | None
    epochs: int
    lr: float
    schedule: str
    warmup_steps: int
    fine_tune_epochs: int
    fine_tune_lr_factor: float
    loss: str
    fine_tune_loss: str | None


def plan_phases(cfg: PhaseSettings, steps_per_epoch: int) -> list[Phase]:
    """The main phase (``steps``, or ``epochs`` x steps per epoch) and the optional fine-tune:
    ``fine_tune_epochs`` x steps per epoch more, at lr x fine_tune_lr_factor, constant (plateau
    cuts if the schedule is plateau), from the main phase's best weights and a new optimizer."""
    main = cfg.steps if cfg.steps is not None else cfg.epochs * steps_per_epoch
    phases = [Phase("main", main, cfg.lr, cfg.schedule, cfg.warmup_steps)]
    if cfg.fine_tune_epochs:
        phases.append(Phase("fine_tune", cfg.fine_tune_epochs * steps_per_epoch,
                            cfg.lr * cfg.fine_tune_lr_factor, "constant", 0))
    return phases


class EpochSampler(Sampler[int]):
    """This epoch's shuffled ``order`` from ``start``: a resumed epoch skips the items done."""

    def __init__(self, n: int) -> None:
        self.order: list[int] = list(range(n))
        self.start = 0

    def __len__(self) -> int:
        return len(self.order) - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(self.order[self.start:])


@dataclass
class Progress:
    """Where a run is (saved in the resume file as a dict)."""

    phase: int = 0  # index into the phases; len(phases) when done
    phase_step: int = 0  # optimizer steps done in this phase
    step: int = 0  # optimizer steps done in all
    epoch: int = 0  # epochs started, all phases
    position: int = 0  # batches done in the current epoch (0: start a new one)
    order: list[int] = field(default_factory=list)  # the current epoch's shuffled item order
    loader_state: torch.Tensor | None = None  # the DataLoader generator at the epoch's start
    stale: int = 0  # validations without a new best (early stopping)
    stopped: bool = False  # the phase stopped early
    best_dice: float = -1.0
    best_step: int = 0
    best_epoch: float = 0.0
    loss_sum: float = 0.0  # training loss since the last validation
    loss_count: int = 0
    seconds: float = 0.0  # training time of earlier (killed) processes


class ExponentialAverage:
    """An exponential moving average of a model's weights (floating tensors, buffers included;
    others copied). The decay warms up as timm's ModelEmaV3 does, min(decay, (1 + n) / (10 + n))
    after n updates, so a short run's average is not held back by its starting weights."""

    def __init__(self, state: dict[str, torch.Tensor], decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.state = {k: v.detach().clone() for k, v in state.items()}

    @torch.no_grad()
    def update(self, state: dict[str, torch.Tensor]) -> None:
        """Move the average toward ``state`` (the model's weights after a step)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in state.items():
            mine = self.state[name]
            if mine.is_floating_point():
                mine.lerp_(value.detach().to(mine.dtype), 1 - decay)
            else:
                mine.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        """What a resume file keeps of it."""
        return {"updates": self.updates, "state": self.state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Carry on from ``state_dict()``'s dict."""
        self.updates = int(saved["updates"])
        self.state = {k: v.clone() for k, v in saved["state"].items()}
