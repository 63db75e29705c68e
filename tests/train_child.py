"""A tiny, seeded training run for the training and resume tests: importable, and runnable as a
child process (``python tests/train_child.py OUT_DIR RESUME_PATH PARAMS_HASH``) that a test
can SIGKILL. With ``CARVANA_TEST_KILL_AT_STEP=N`` in its environment the child sends itself
SIGKILL right after optimizer step N (a real kill: no cleanup, no exception handlers)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from carvana.checkpoint import clear_resume, save_checkpoint
from carvana.models import create_model
from carvana.training import Resume, TrainConfig, TrainData, seed_everything, train

KILL_ENV = "CARVANA_TEST_KILL_AT_STEP"
MODEL_PARAMS = {"initial_filters": 4, "depth": 2}

# 16 images, batch 4: 4 steps an epoch; cosine after warm-up, a frozen encoder for the first
# 8 steps, a checkpoint every 3 steps, a one-epoch fine-tune with the Lovász hinge: 12 + 4 = 16
# steps in all, and an average of the weights (its state is resumed too).
RESUME_CFG = {"steps": 12, "batch_size": 4, "warmup_steps": 3, "schedule": "cosine",
              "freeze_encoder_steps": 8, "checkpoint_every_steps": 3, "fine_tune_epochs": 1,
              "fine_tune_loss": "lovasz", "ema": 0.5}


class Blobs(Dataset):
    """``n`` random 32x32 uint8 images, each with a darker square that is its mask."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.images = (torch.rand(n, 3, 32, 32, generator=gen) * 255).to(torch.uint8)
        self.masks = torch.zeros(n, 1, 32, 32, dtype=torch.uint8)
        for i in range(n):
            top, left = torch.randint(0, 16, (2,), generator=gen).tolist()
            self.masks[i, :, top:top + 14, left:left + 14] = 1
            self.images[i, :, top:top + 14, left:left + 14] //= 3

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "mask": self.masks[index]}


def tiny_model(seed: int = 1) -> nn.Module:
    """A seeded two-level U-Net with 4 initial filters."""
    seed_everything(seed)
    return create_model("unet", 3, **MODEL_PARAMS)


def main(out_dir: str, resume_path: str, params_hash: str) -> None:
    """Train the tiny model with resume; write weights.pt and history.csv; clear the resume."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    kill_at = int(os.environ.get(KILL_ENV, "0"))
    torch.set_num_threads(1)  # a tiny model: as fast, and immune to other jobs on the cores

    def on_step(step: int, model: nn.Module) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    cfg = TrainConfig.from_dict(RESUME_CFG)
    state, history, summary = train(
        tiny_model(), TrainData(Blobs(16, 0), Blobs(4, 1)), cfg, torch.device("cpu"), 1,
        resume=Resume(resume_path, params_hash), on_step=on_step)
    out = Path(out_dir)
    meta = {"name": "tiny", "arch": "unet", "params": MODEL_PARAMS, "in_channels": 3,
            "input": "lowres", "size": 32, "params_hash": params_hash}
    save_checkpoint(out / "weights.pt", state, meta)
    clear_resume(resume_path)  # as a stage does once the final weights are written
    history.to_csv(out / "history.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main(*sys.argv[1:4])
