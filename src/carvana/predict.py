"""Prediction: stream images through a trained model, store uint8 probability PNGs per image."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from carvana.checkpoint import load_checkpoint
from carvana.io import write_prob
from carvana.models import SegmentationModel, build_for_loading
from carvana.training import to_input

log = logging.getLogger(__name__)


def load_model(weights: str | Path, device: torch.device, expect: dict[str, Any] | None = None,
               rule: str | None = None) -> tuple[SegmentationModel, dict[str, Any]]:
    """Rebuild a model from its checkpoint (architecture from the stored meta, weights_only).

    ``expect`` (e.g. ``{"name": "unet64", "input": "lowres"}``) is checked against the stored
    meta: a checkpoint of another model is an error naming both, never a silent wrong answer.
    """
    state, meta = load_checkpoint(weights, expect, rule=rule)
    model = build_for_loading(meta["arch"], in_channels=meta["in_channels"], params=meta["params"])
    model.load_state_dict(state)
    model.to(device).eval()
    model.to(memory_format=torch.channels_last)
    return model, meta


@torch.inference_mode()
def predict_probs(model: torch.nn.Module, x: torch.Tensor, tta_hflip: bool,
                  amp: bool = True) -> torch.Tensor:
    """Sigmoid probabilities (N,1,H,W); with ``tta_hflip`` averaged with the flipped image's.

    Runs under ``torch.inference_mode``; pass ``x`` and the model in channels_last layout (see
    ``predict_to_dir``) for the fast convolutions, on the CPU as on CUDA.
    """
    with torch.autocast(x.device.type, enabled=amp and x.device.type == "cuda"):
        prob = torch.sigmoid(model(x).float())
        if tta_hflip:
            prob = 0.5 * (prob + torch.sigmoid(model(x.flip(-1)).float()).flip(-1))
    return prob


def predict_to_dir(model: torch.nn.Module, dataset: Dataset, out_dir: str | Path,
                   device: torch.device, batch_size: int = 8, tta_hflip: bool = False,
                   num_workers: int = 0) -> dict[str, float]:
    """Write ``<id>.png`` (8-bit probability) for every item of ``dataset`` into ``out_dir``.

    Images stream through a DataLoader: memory depends on the batch, not the number of images.
    The model is switched to channels_last (in place) and so is each batch, on every device.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cuda = device.type == "cuda"
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=cuda)
    # NHWC weights (in place, idempotent): on a 2-core CPU a 960x960 tile forward of the default
    # tile U-Net is ~1.8x faster, same decisions (benchmarks/cpu_fastpaths.py); CUDA too
    model.to(memory_format=torch.channels_last)
    start = time.perf_counter()
    n = 0
    for batch in tqdm(loader, desc=f"predict {out_dir}", mininterval=5):
        x = to_input(batch["image"], device, channels_last=True)
        prob = predict_probs(model, x, tta_hflip).squeeze(1).cpu().numpy()
        for image_id, p in zip(batch["id"], prob, strict=True):
            write_prob(out_dir / f"{image_id}.png", p)
        n += len(prob)
    seconds = time.perf_counter() - start
    log.info("predicted %d images in %.1f s", n, seconds)
    return {"images": n, "seconds": seconds, "seconds_per_image": seconds / max(n, 1)}
