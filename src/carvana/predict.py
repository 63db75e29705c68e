"""Prediction: stream images through a trained model, store uint8 probability PNGs per image."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from carvana.io import write_prob
from carvana.models import SegmentationModel, create_model
from carvana.training import load_checkpoint, to_input

log = logging.getLogger(__name__)


def load_model(weights: str | Path, device: torch.device) -> tuple[SegmentationModel, dict[str, Any]]:
    """Rebuild a model from its checkpoint (architecture from the stored meta, weights_only)."""
    state, meta = load_checkpoint(weights)
    model = create_model(meta["arch"], in_channels=meta["in_channels"], **meta["params"])
    model.load_state_dict(state)
    model.to(device).eval()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model, meta


@torch.no_grad()
def predict_probs(model: torch.nn.Module, x: torch.Tensor, tta_hflip: bool,
                  amp: bool = True) -> torch.Tensor:
    """Sigmoid probabilities (N,1,H,W); with ``tta_hflip`` averaged with the flipped image's."""
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
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cuda = device.type == "cuda"
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=cuda)
    start = time.perf_counter()
    n = 0
    for batch in tqdm(loader, desc=f"predict {out_dir}", mininterval=5):
        x = to_input(batch["image"], device, cuda)
        prob = predict_probs(model, x, tta_hflip).squeeze(1).cpu().numpy()
        for image_id, p in zip(batch["id"], prob, strict=True):
            write_prob(out_dir / f"{image_id}.png", p)
        n += len(prob)
    seconds = time.perf_counter() - start
    log.info("predicted %d images in %.1f s", n, seconds)
    return {"images": n, "seconds": seconds, "seconds_per_image": seconds / max(n, 1)}
